"""A call's source audio read back from the lake, as the fetch would have left it: the
``<call_id>.8k.wav`` an earlier run landed, written again as channel files on the call's grid, and
the ``StreamAudio`` values that ``FetchStreams`` makes.  ``voicelake run --from_lake`` hands those
to ``AnalyseCalls`` unchanged, so a call re-analysed from the lake takes the one analysis path a
call fetched from KVS takes.

The WAV holds the call window exactly (sample 0 = ``calls.start_time``), holes zero-filled.  What
the samples cannot say comes from the earlier landing's rows (``Landing``): where the window
starts, each channel's stream, the zero-filled gaps (they must stay gaps, not become covered
silence, so a channel file's covered ranges are the window less its gaps) and the fetch's counts.
No Beam, no storage: local files only.
"""
from __future__ import annotations

import contextlib
import wave
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from voicelake.analysis.call_audio import AGENT_TRACKS, CHUNK_SECONDS, CUSTOMER_TRACKS
from voicelake.audio import ms_to_samples, samples_to_ms
from voicelake.media.channel_file import ChannelPiece, Coverage
from voicelake.model import CONNECT, CallSpec, StreamAudio

# What is read of the earlier landing, per table: the values that came from KVS, not the audio.
LANDING_COLUMNS = {
    "calls": ("call_id", "source", "start_time", "end_time", "sample_rate", "channel_count",
              "fragments", "missing_fragments", "bytes_fetched"),
    "channels": ("call_id", "source", "channel", "stream_arn"),
    "gaps": ("call_id", "source", "channel", "start_ms", "end_ms"),
}
# The Connect track each channel came from (call_audio.connect_channel reads them back).
CONNECT_TRACKS = (CUSTOMER_TRACKS[0], AGENT_TRACKS[0])
# A missing fragment's number is not in the lake, only how many there were.
MISSING_BEFORE = "missing when the call was first fetched from KVS (its number is not in the lake)"


@dataclass(frozen=True)
class Landing:
    """What an earlier run landed of a call that its source WAV does not say."""
    start_ms: int  # calls.start_time: the window's start, the WAV's sample 0
    end_ms: int  # calls.end_time
    sample_rate: int
    channel_count: int
    fragments: int
    missing_fragments: int
    bytes_fetched: int
    arns: tuple[str | None, ...]  # channels.stream_arn by channel; None: the channel was never streamed
    gaps: tuple[tuple[int, int, int], ...]  # gaps rows: (channel, start_ms, end_ms) after start_ms


def read_rows(local_path: str, table: str) -> list[dict]:
    """A table file's rows, only the columns a ``Landing`` takes, times as epoch ms."""
    data = pq.read_table(local_path, columns=list(LANDING_COLUMNS[table]))
    for name in ("start_time", "end_time"):
        if name in data.column_names:
            data = data.set_column(data.column_names.index(name), name,
                                   data.column(name).cast(pa.int64()))
    return data.to_pylist()


def landings(calls: Iterable[dict], channels: Iterable[dict], gaps: Iterable[dict]
             ) -> dict[tuple[str, str], Landing]:
    """(call_id, source) -> Landing, from a partition's rows of calls, channels and gaps."""
    arns: dict[tuple[str, str], dict[int, str | None]] = {}
    for row in channels:
        arns.setdefault((row["call_id"], row["source"]), {})[row["channel"]] = row["stream_arn"]
    holes: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for row in gaps:
        holes.setdefault((row["call_id"], row["source"]), []).append(
            (row["channel"], row["start_ms"], row["end_ms"]))
    out = {}
    for row in calls:
        key = (row["call_id"], row["source"])
        by_channel = arns.get(key, {})
        out[key] = Landing(
            start_ms=row["start_time"], end_ms=row["end_time"], sample_rate=row["sample_rate"],
            channel_count=row["channel_count"], fragments=row["fragments"] or 0,
            missing_fragments=row["missing_fragments"] or 0, bytes_fetched=row["bytes_fetched"] or 0,
            arns=tuple(by_channel.get(c) for c in range(row["channel_count"])),
            gaps=tuple(sorted(holes.get(key, ()))))
    return out


# ---- the WAV ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WavShape:
    channels: int
    sample_rate: int
    sample_width: int
    frames: int


def wav_shape(local_path: str) -> WavShape:
    with wave.open(local_path, "rb") as w:
        return WavShape(w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes())


def mismatch(landing: Landing, shape: WavShape, shift: int, grid_samples: int) -> str | None:
    """Why the WAV cannot be the call's landed source audio on today's grid, or None."""
    if (shape.channels, shape.sample_rate, shape.sample_width) != (
            landing.channel_count, landing.sample_rate, 2):
        return (f"the source WAV holds {shape.channels} channel(s) of {8 * shape.sample_width}-bit "
                f"audio at {shape.sample_rate} Hz; the call's rows say {landing.channel_count} "
                f"channel(s) of 16-bit audio at {landing.sample_rate} Hz")
    end_ms = landing.start_ms + -(-shape.frames * 1000 // shape.sample_rate)
    if end_ms != landing.end_ms:
        return (f"the source WAV's {shape.frames} samples end the call at {end_ms}; the call's "
                f"rows say {landing.end_ms}")
    if shift < 0 or shift + shape.frames > grid_samples:
        return ("the call's record no longer spans its landed audio: the record's window moved "
                "since the call was landed")
    return None


def write_channel_files(wav_path: str, targets: dict[int, str], *, shift: int) -> None:
    """The WAV's channels (``targets``: channel -> local file) as channel files on the call's grid,
    sample i at grid sample ``shift + i``, CHUNK_SECONDS at a time (never the whole call in
    memory).  Before ``shift`` a file is a hole, as the fetch leaves it."""
    with wave.open(wav_path, "rb") as w, contextlib.ExitStack() as stack:
        files = {c: stack.enter_context(open(path, "wb")) for c, path in targets.items()}
        for f in files.values():
            f.seek(2 * shift)
        width, chunk = w.getnchannels(), CHUNK_SECONDS * w.getframerate()
        while data := w.readframes(chunk):
            frames = np.frombuffer(data, "<i2").reshape(-1, width)
            for c, f in files.items():
                f.write(np.ascontiguousarray(frames[:, c]).tobytes())


# ---- the grid ranges the fetch had covered ----------------------------------------------------

def _first_sample(ms: int, rate: int) -> int:
    """The first sample offset that ``samples_to_ms`` rounds to ``ms`` or later."""
    s = ms_to_samples(ms, rate)
    while samples_to_ms(s - 1, rate) >= ms:
        s -= 1
    while samples_to_ms(s, rate) < ms:
        s += 1
    return s


def covered(gaps: Iterable[tuple[int, int]], samples: int, rate: int, *, inner_only: bool) -> Coverage:
    """A channel's covered sample offsets: the window less its gaps (ms after sample 0).

    A gap row says its ends to the ms, so each end is placed where ``call_audio.channel_gaps``
    rounds it back to the same ms: the hole's start at the first sample of its ms, its end at the
    last, so the hole stays longer than the 1 ms a gap needs.  A hole never takes sample 0: every
    channel then starts the window where the earlier run's first sample did.  A leg's gaps
    (``inner_only``, Chime) never reach the window's end either, or they would stop being gaps."""
    holes = Coverage()
    for start_ms, end_ms in gaps:
        a = max(_first_sample(start_ms, rate), 1)
        b = min(_first_sample(end_ms + 1, rate) - 1, samples - 1 if inner_only else samples)
        holes.add(a, b)
    return Coverage([(0, samples)]).minus(holes)


def channel_piece(path: str, landing: Landing, channel: int, samples: int, *, shift: int,
                  inner_only: bool) -> ChannelPiece:
    """The channel file's ``ChannelPiece``: its covered grid ranges; ``cut_at_end`` when it ends in
    a gap (only a channel cut at the grid's end has a gap up to the window's end)."""
    gaps = [(a, b) for c, a, b in landing.gaps if c == channel]
    coverage = covered(gaps, samples, landing.sample_rate, inner_only=inner_only)
    return ChannelPiece(path=path, sample_rate=landing.sample_rate,
                        ranges=tuple((shift + a, shift + b) for a, b in coverage),
                        cut_at_end=coverage.ends[-1] < samples)


def streams_of(call: CallSpec, landing: Landing, pieces: dict[int, ChannelPiece]) -> list[StreamAudio]:
    """The ``StreamAudio`` values the fetch made: one per channel that had audio, on its stream, the
    call's fetch counts on the first.  A Connect channel travels as its track; a Chime one as its
    leg's channel."""
    connect = call.source == CONNECT
    out = []
    for index, (channel, piece) in enumerate(sorted(pieces.items())):
        first = index == 0
        out.append(StreamAudio(
            call=call, stream_index=channel, stream_arn=landing.arns[channel],
            channel=None if connect else channel,
            tracks=((CONNECT_TRACKS[channel] if connect else f"channel-{channel}", piece),),
            fragments_kept=landing.fragments if first else 0,
            missing=tuple((str(n), MISSING_BEFORE) for n in range(landing.missing_fragments)) if first else (),
            fragment_bytes=landing.bytes_fetched if first else 0))
    return out


def audio_channels(landing: Landing) -> list[int]:
    """The channels that had audio (a stream): the others were silence and have no channel file."""
    return [c for c, arn in enumerate(landing.arns) if arn is not None]
