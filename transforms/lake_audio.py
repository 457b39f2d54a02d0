"""CallSpec -> (call key, StreamAudio) from the lake itself, for ``voicelake run --from_lake``.

KVS keeps media for hours or days; after that the lake's source WAVs (``<call_id>.8k.wav``) are the
only copy of a call's audio.  This stage stands in for listing and fetching: each call's source WAV
is written back as channel files on the call's grid, and what the audio cannot say (where the window
starts, each channel's stream, the zero-filled gaps, the fetch's counts) comes from the rows the
earlier run landed (``voicelake.analysis.source_audio``).  ``AnalyseCalls`` then computes everything
again exactly as for a call fetched from KVS.  No KVS call is made.

The earlier rows are read once per partition: calls are grouped by (date, partition) first, which
carries only CallSpecs; the WAVs are then copied call by call after a reshuffle, so the copying
spreads over the workers again.  A call whose source WAV or rows the lake does not hold fails as
``no_source_audio``; one whose WAV disagrees with its rows, as ``source_audio_mismatch``.
"""
from __future__ import annotations

import contextlib
import time

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.common import FAILURES, call_failure, call_key
from voicelake import layout, storage
from voicelake.analysis import source_audio
from voicelake.analysis.call_audio import grid
from voicelake.analysis.source_audio import Landing
from voicelake.audio import ms_to_samples
from voicelake.media.channel_file import ChannelPiece
from voicelake.model import CHIME, CallSpec, Failure, StreamAudio

NAMESPACE = "voicelake.lake_audio"
STAGE = "audio"
NO_SOURCE_AUDIO = "no_source_audio"
SOURCE_AUDIO_MISMATCH = "source_audio_mismatch"
RERUN = ("re-run it from KVS while KVS still holds its media, with --write_raw_channels (the "
         "default), to land it with its source audio")


def no_source_audio(call: CallSpec, what: str) -> Failure:
    return call_failure(call, STAGE, NO_SOURCE_AUDIO,
                        f"the lake keeps no source audio for this call ({what}): {RERUN}")


def partition_landings(root: str, date: str, partition: str) -> dict[tuple[str, str], Landing]:
    """The earlier landing of every call of one partition: a few columns of calls, channels, gaps."""
    rows = {}
    for table in source_audio.LANDING_COLUMNS:
        rows[table] = []
        for path in storage.list_paths(layout.table_files(root, table, date, partition)):
            with storage.readable(path) as local:
                rows[table] += source_audio.read_rows(local, table)
    return source_audio.landings(rows["calls"], rows["channels"], rows["gaps"])


def source_wavs(root: str, date: str, partition: str) -> set[str]:
    """The source WAVs the partition's audio folder holds: one listing, not one request per call."""
    folder = layout.partition_dir(root, layout.AUDIO, date, partition)
    return set(storage.list_paths(layout.join(folder, f"*{layout.SOURCE_SUFFIX}{layout.WAV}")))


class _EarlierLandings(beam.DoFn):
    """((date, partition), its CallSpecs) -> (call, Landing) per call the lake can re-analyse, or a
    no_source_audio Failure."""

    def __init__(self, root: str):
        self.root = root

    def process(self, element):
        (date, partition), calls = element
        landed = partition_landings(self.root, date, partition)
        wavs = source_wavs(self.root, date, partition)
        for call in calls:
            found = self.landing_of(call, landed, wavs)
            if isinstance(found, Failure):
                yield beam.pvalue.TaggedOutput(FAILURES, found)
            else:
                yield call, found

    def landing_of(self, call: CallSpec, landed: dict, wavs: set[str]) -> Landing | Failure:
        landing = landed.get((call.call_id, call.source))
        if landing is None or not source_audio.audio_channels(landing):
            return no_source_audio(call, f"no earlier landing of it in calls/ and channels/ of "
                                         f"date={call.date}, voice_connector_id={call.partition_id}")
        wav = layout.wav_path(self.root, call.date, call.partition_id, call.call_id, source=True)
        if wav not in wavs:
            return no_source_audio(call, f"{wav} is missing")
        return landing


class _SourceAudio(beam.DoFn):
    """(call, Landing) -> (call key, StreamAudio) per channel that had audio, the call's source WAV
    written back as channel files under the scratch, as the fetch writes them."""

    def __init__(self, root: str):
        self.root = root
        self.calls = Metrics.counter(NAMESPACE, "calls")  # read back from the lake
        self.cpu_ms = Metrics.counter(NAMESPACE, "cpu_ms")  # this stage's own CPU, for profiles

    def process(self, element):
        call, landing = element
        started = time.thread_time()
        pieces = self.write_back(call, landing)
        self.cpu_ms.inc(int((time.thread_time() - started) * 1000))
        if isinstance(pieces, Failure):
            yield beam.pvalue.TaggedOutput(FAILURES, pieces)
            return
        self.calls.inc()
        for stream in source_audio.streams_of(call, landing, pieces):
            yield call_key(call), stream

    def write_back(self, call: CallSpec, landing: Landing) -> dict[int, ChannelPiece] | Failure:
        """The source WAV's channels that had audio as channel files on the call's grid, and their
        covered ranges; or why the WAV cannot be the call's landed audio."""
        wav = layout.wav_path(self.root, call.date, call.partition_id, call.call_id, source=True)
        folder = layout.channel_files_dir(self.root, call.date, call.source, call.partition_id,
                                          call.call_id)
        paths = {c: f"{folder}/lake-channel-{c}.pcm" for c in source_audio.audio_channels(landing)}
        origin_ms, end_ms = grid(call)
        rate = landing.sample_rate
        shift = ms_to_samples(landing.start_ms - origin_ms, rate)
        with storage.readable(wav) as local_wav:
            shape = source_audio.wav_shape(local_wav)
            problem = source_audio.mismatch(landing, shape, shift, ms_to_samples(end_ms - origin_ms, rate))
            if problem:
                return call_failure(call, STAGE, SOURCE_AUDIO_MISMATCH, f"{wav}: {problem}")
            with contextlib.ExitStack() as stack:
                targets = {c: stack.enter_context(storage.writable(p)) for c, p in paths.items()}
                source_audio.write_channel_files(local_wav, targets, shift=shift)
        inner_only = call.source == CHIME  # a Chime leg's gaps are inner ones (call_audio.channel_pieces)
        return {c: source_audio.channel_piece(p, landing, c, shape.frames, shift=shift, inner_only=inner_only)
                for c, p in paths.items()}


@beam.typehints.with_input_types(CallSpec)
class LakeAudio(beam.PTransform):
    """CallSpec -> (call key, StreamAudio) (main output), as ``FetchStreams`` makes them, from the
    lake's source WAVs and earlier rows; Failures (second output)."""

    def __init__(self, root: str):
        super().__init__()
        self.root = root

    def expand(self, calls):
        found = (
            calls
            | "ByPartition" >> beam.Map(lambda c: ((c.date, c.partition_id), c))
            | "GroupByPartition" >> beam.GroupByKey()
            | "EarlierLandings" >> beam.ParDo(_EarlierLandings(self.root))
            .with_outputs(FAILURES, main="landings")
        )
        audio = (
            found.landings
            | "SpreadCalls" >> beam.Reshuffle()
            | "SourceWavs" >> beam.ParDo(_SourceAudio(self.root))
            .with_output_types(tuple[str, StreamAudio], failures=Failure).with_outputs(FAILURES, main="audio")
        )
        failures = (found[FAILURES], audio[FAILURES]) | "LakeAudioFailures" >> beam.Flatten()
        return audio.audio, failures
