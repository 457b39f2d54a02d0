"""Pipeline options, Beam-style: one PipelineOptions subclass read with ``options.view_as``.

``voicelake run --help`` must not import Beam (seconds, and its import-time warnings), so the
options are declared on a plain class and ``VoicelakeOptions``, the PipelineOptions subclass, is
made from it on first use (``from pipeline.options import VoicelakeOptions`` works as usual).
"""
from __future__ import annotations

from pipeline.dates import DAYS, day, days_between, parse_dates
from voicelake.records.firehose import DEFAULT_MAX_OBJECT_MB

# The voicelake options an operator must give (help and errors name them).
REQUIRED = ("--date (or --start_date/--end_date)", "--output",
            "at least one of --ctr_prefix, --sdr_prefix, --events_prefix")
# the record prefixes, each with the kind of records it holds
PREFIX_OPTIONS = (("ctr_prefix", "ctr"), ("sdr_prefix", "sdr"), ("events_prefix", "event"))
# the runner of run and export when none is given
DEFAULT_RUNNER = "FnApiRunner"  # DirectRunner would first try Prism, which ignores our worker mode



class VoicelakeArguments:
    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("voicelake")
        g.add_argument("--date", help=f"required (or --start_date): UTC days to process, {DAYS}, "
                                      "e.g. --date=2024-05-14 or --date=2024-05-01..2024-05-03,2024-05-07")
        g.add_argument("--start_date", help="first UTC day of a range, YYYY-MM-DD")
        g.add_argument("--end_date", help="last UTC day of a range (inclusive), YYYY-MM-DD")
        g.add_argument("--sdr_prefix", default=None,
                       help="where Chime Voice Connector SDRs live: the folder holding "
                            "Amazon-Chime-Voice-Connector-SDRs/ (s3://bucket/prefix/ or a local path)")
        g.add_argument("--events_prefix", default=None,
                       help="where archived Chime streaming-status events live (Firehose layout "
                            "YYYY/MM/dd/HH/); without it, Chime calls are found by scanning the "
                            "Voice Connector's streams for fragments tagged with the TransactionId")
        g.add_argument("--ctr_prefix", default=None,
                       help="where Amazon Connect CTR Firehose objects live (layout YYYY/MM/dd/HH/)")
        g.add_argument("--output", required=False,
                       help="required: root of the lake (s3://bucket/prefix or a local path)")
        g.add_argument("--lookahead_hours", type=int, default=24,
                       help="hours after the last day whose Firehose folders are also read: CTRs and "
                            "events land by arrival time and are re-delivered later (default 24)")
        g.add_argument("--max_record_object_mb", type=float, default=DEFAULT_MAX_OBJECT_MB,
                       help="largest record object (CTR, event or SDR file) read, in MB after gzip "
                            "inflation; a larger one is one failure row (too_large) and is not read. "
                            f"Firehose writes at most 128 MiB per object (default {DEFAULT_MAX_OBJECT_MB})")
        g.add_argument("--kvs_endpoint_url", default=None,
                       help="KVS control-plane endpoint (default: AWS's for the region); the local "
                            "emulator's URL in the demo and tests")
        g.add_argument("--kvs_region", default=None, help="AWS region of the KVS streams")
        g.add_argument("--fragment_selector", default="SERVER_TIMESTAMP",
                       choices=["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"],
                       help="which KVS clock ListFragments filters on (default SERVER_TIMESTAMP, the "
                            "service-side clock that record timestamps come from; producer clocks can be off by days)")
        g.add_argument("--max_fragment_ms", type=int, default=10_000,
                       help="longest fragment KVS allows; the call window is padded by it because "
                            "ListFragments selects by fragment start (default 10000)")
        g.add_argument("--fragments_per_range", type=int, default=1000,
                       help="fragments per GetMediaForFragmentList request, 1-1000; smaller gives "
                            "more parallelism (default 1000)")
        g.add_argument("--max_attempts", type=int, default=6,
                       help="rounds a fragment range gets when KVS answers without the fragment "
                            "(in-band FRAGMENT_NOT_FOUND, a fragment shorter than listed) before it "
                            "is reported missing (default 6)")
        g.add_argument("--kvs_retry_budget_s", type=float, default=1800.0,
                       help="seconds each KVS request (a fragment range, a listing) keeps retrying "
                            "throttling, 5xx, resets and cut bodies, with backoff and jitter, before "
                            "its call fails as throttled / kvs_unavailable (default 1800: a nightly "
                            "batch outwaits a busy stream)")
        g.add_argument("--allow_missing_fragments", action="store_true", default=False,
                       help="keep a call whose fragments are missing or expired, as a partial call "
                            "with gaps (default: the call goes to failures with the reason)")
        g.add_argument("--target_sample_rate", type=int, default=16000,
                       help="sample rate of the ML WAV (default 16000)")
        g.add_argument("--customer_leg", default="auto", choices=["auto", "caller", "callee"],
                       help="Chime: which leg is the customer; auto = the caller on Inbound calls, "
                            "the callee on Outbound calls")
        g.add_argument("--vad", default="silero", choices=["silero", "energy"],
                       help="voice activity behind every talk, silence, overlap and turn column: "
                            "silero = Silero VAD v5, a neural model shipped in a wheel and run on "
                            "the CPU (default); energy = energy-v1, the free level gate, which "
                            "counts noise, hold music and loud non-speech sounds as talk")
        g.add_argument("--write_raw_channels", action="store_true", default=True,
                       help="keep each call's source audio in the lake: <call_id>.8k.wav beside "
                            "its ML WAV, the un-normalised source samples of every channel, the "
                            "call window exactly, gaps zero-filled. It is what --from_lake reads, "
                            "the only copy of the audio once KVS retention has passed; 115.2 MB per "
                            "hour of a two-channel call (57.6 MB per channel-hour), half the 16 "
                            "kHz ML WAV (default: on)")
        g.add_argument("--no_write_raw_channels", dest="write_raw_channels", action="store_false",
                       help="do not keep the source audio: the calls of this run cannot be "
                            "re-analysed with --from_lake once KVS no longer holds their media")
        g.add_argument("--from_lake", action="store_true", default=False,
                       help="re-analyse calls from the lake instead of KVS: read the records as "
                            "usual, take each call's audio from the source WAV an earlier run "
                            "landed under --output (and the KVS facts from its rows), and compute "
                            "every feature, WAV and row again. No KVS media is listed or fetched; a "
                            "call without source audio in the lake fails as no_source_audio")
        g.add_argument("--replace", action="store_true", default=False,
                       help="replace the run's dates outright: a call an earlier run landed and "
                            "this run does not land again is removed (default: it keeps its rows "
                            "and WAVs, and failures says why)")
        g.add_argument("--connect_attribute_keys", default=None,
                       help="Connect: comma-separated Attributes keys holding stream ARN, start "
                            "fragment, start and stop timestamps, used when a CTR has no KVS "
                            "Recordings entry")
        g.add_argument("--require_records", action="store_true", default=False,
                       help="fail (exit status 3) when a given prefix holds no objects or the run "
                            "reads no records, instead of warning and writing an empty day")
        g.add_argument("--progress_interval", type=float, default=10.0,
                       help="seconds between progress lines on stderr (default 10)")
        g.add_argument("--progress_dir", default=None,
                       help="folder where worker processes leave their progress counts for the "
                            "progress lines (default: a temporary folder on this machine when "
                            "--output is local, <output>/_runs/<date>/progress/ when it is s3://, "
                            "which remote workers reach too)")
        g.add_argument("--log_file", default=None,
                       help="file for the run's full log, Beam's and the workers' output and "
                            "tracebacks (default: voicelake-run-<date>-<time>.log in the system's "
                            "temporary folder; errors print its path)")


def vad_config(opts):
    """The VadConfig of ``--vad``."""
    from voicelake.analysis.features import ENERGY_V1, VadConfig

    return ENERGY_V1 if getattr(opts, "vad", "silero") == "energy" else VadConfig()


def run_dates(opts) -> list[str]:
    """The UTC days a run covers: --date in the grammar every command shares (pipeline.dates), or
    the range --start_date to --end_date."""
    if opts.date and (opts.start_date or opts.end_date):
        raise ValueError("give --date or --start_date/--end_date, not both")
    if opts.end_date and not opts.start_date:
        raise ValueError("--end_date needs --start_date")
    if not (opts.date or opts.start_date):
        raise ValueError("--date (or --start_date) is required, e.g. --date=2024-05-14")
    if opts.date:
        return parse_dates(opts.date, "--date")
    start = day("--start_date", opts.start_date)
    end = day("--end_date", opts.end_date) if opts.end_date else start
    if end < start:
        raise ValueError(f"--end_date={end} is before --start_date={start}")
    return days_between(start, end)


_made: dict[str, type] = {}


def __getattr__(name: str):
    """``VoicelakeOptions``: the Beam options class, made on first use (module ``__getattr__``)."""
    if name != "VoicelakeOptions":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _made:
        from apache_beam.options.pipeline_options import PipelineOptions

        # Beam finds options classes as PipelineOptions subclasses; the arguments come from
        # VoicelakeArguments._add_argparse_args through the MRO.
        _made[name] = type(name, (VoicelakeArguments, PipelineOptions),
                           {"__module__": __name__, "__qualname__": name})
    return _made[name]
