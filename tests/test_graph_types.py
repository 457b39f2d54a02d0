"""The pipeline's graph carries its types: each stage's output PCollection says what its elements
are, and Beam's construction-time check holds a stage to its declared input."""
import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.typehints import typehints
from apache_beam.typehints.decorators import TypeCheckError

from pipeline import graph
from pipeline.options import VoicelakeOptions
from transforms.analyse_calls import AnalyseCalls
from transforms.fetch_media import FetchStreams
from transforms.fragment_ranges import PlanFragmentRanges
from voicelake.model import CallRows, CallSpec, Failure, FragmentRange, StreamAudio


def element_types(p: beam.Pipeline) -> dict[str, object]:
    """Each transform's full label -> the element type of its main output; ``label[tag]`` for a
    tagged output."""
    found = {}

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            for tag, out in node.outputs.items():
                found[node.full_label + ("" if tag is None else f"[{tag}]")] = out.element_type

        enter_composite_transform = visit_transform

    p.visit(Visitor())
    return found


@pytest.fixture
def built(tmp_path):
    opts = PipelineOptions(["--date=2024-05-14", f"--output={tmp_path}", "--ctr_prefix=s3://ctr/",
                            "--sdr_prefix=s3://sdr/", "--events_prefix=s3://events/"])
    p = beam.Pipeline(options=opts)
    graph.build(p, opts.view_as(VoicelakeOptions))
    return element_types(p)


@pytest.mark.parametrize("label, expected", [
    ("ConnectCalls/Route", CallSpec),
    ("ChimeCalls/Route", CallSpec),
    ("ConnectCalls/ConnectFailures", Failure),
    ("ChimeCalls/ChimeFailures", Failure),
    ("FragmentRanges/ListFragments", FragmentRange),
    ("FragmentRanges/ListFragments[failures]", Failure),
    ("FetchMedia", typehints.Tuple[str, StreamAudio]),
    ("Analyse/AnalyseCall", CallRows),
    ("Analyse/AnalyseCall[failures]", Failure),
    ("AllFailures", Failure),
    ("FailureRows", typehints.Tuple[str, str, str, typehints.Dict[typehints.Any, typehints.Any]]),
    ("Lake", int),
])
def test_each_stage_says_what_it_outputs(built, label, expected):
    assert built[label] == expected


@pytest.mark.parametrize("make, wrong", [
    (lambda lake: PlanFragmentRanges(), 7),
    (FetchStreams, "not a range"),
    (AnalyseCalls, 3.5),
])
def test_a_stage_given_the_wrong_elements_fails_when_the_graph_is_built(tmp_path, make, wrong):
    p = beam.Pipeline()
    with pytest.raises(TypeCheckError):
        _ = p | beam.Create([wrong]) | make(str(tmp_path))
