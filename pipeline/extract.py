"""``voicelake extract BODY --out DIR``: per-track WAV files and a summary from a saved KVS body.

For every track (by name) ``DIR/<name>.wav`` holds exactly that track's frame payloads, put in
timeline order (by absolute frame time; frames with equal times keep body order), as 16-bit PCM
at the track's rate and channel count.  Holes in the timeline (a frame starting at least 1 ms after
the previous frame's end, end = time + payload bytes / 2 / channels / rate) are always listed in
the summary as gaps; ``--fill-gaps`` also writes silence into them, but refuses a hole longer than
``--max-gap-s`` (a producer clock that jumps an hour or a year ahead would otherwise ask for
gigabytes of silence).  Only audio tracks are written: a track whose TrackType or CodecID says
video, subtitles or buttons (``mkv_parser.is_audio``) is listed in the warnings; Connect's ``A_AAC``
is PCM (kvs.md).

``--contact-id`` / ``--transaction-id`` keep only fragments whose ``ContactId`` / ``TransactionId``
tag matches (KVS streams are reused across calls, kvs.md §6.8); the others, including fragments
without the tag, are listed as skipped.  In-band error chunks are listed as errors whatever the
filter: they carry no tags to filter on.

Exit status: 0 on success (a truncated body is still a success: its complete frames are written,
the summary says ``"truncated": true`` and one line goes to stderr); 1 when the body is malformed: the fragments parsed
before the error are still written, ``summary.json`` records ``parse_error``, and one line goes to
stderr; 1 also, with one line on stderr and nothing written, when the body has no audio track or
``--fill-gaps`` meets a hole longer than ``--max-gap-s``; 2 for usage errors or an unreadable BODY.

The frames of all kept fragments are held in memory until the WAVs are written (timeline order
needs all of them); a saved body is at most a few hundred MB.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import wave
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from voicelake.media.mkv_parser import Fragment, ParseError, is_audio, iter_fragments

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
DEFAULT_MAX_GAP_S = 600.0  # ten minutes of silence is 9.6 MB per 8 kHz track
_SILENCE_PIECE = 1 << 20


def file_stem(track_name: str) -> str:
    """A file name for a track: characters outside ``[A-Za-z0-9._-]`` become ``_``."""
    return _UNSAFE.sub("_", track_name)


@dataclass
class _Track:
    name: str
    codec_id: str | None
    sample_rate: int
    channels: int
    blocks: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass
class _Extraction:
    fragments: list[dict] = field(default_factory=list)
    codecs: dict[str, str | None] = field(default_factory=dict)  # every track seen, kept or not
    audio_names: set[str] = field(default_factory=set)  # those of them that are audio
    skipped: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    tracks: dict[str, _Track] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False
    parse_error: dict | None = None


class Refused(Exception):
    """The body cannot be extracted as asked; the message is the one line for stderr."""


def _skip_reason(fragment: Fragment, wanted: dict[str, str]) -> str | None:
    for tag, value in wanted.items():
        if tag not in fragment.tags:
            return f"no {tag} tag"
        if fragment.tags[tag] != value:
            return f"{tag} is {fragment.tags[tag]!r}"
    return None


def _fragment_row(fragment: Fragment) -> dict:
    return {
        "index": fragment.index,
        "byte_offset": fragment.byte_offset,
        "size": fragment.size,
        "fragment_number": fragment.fragment_number,
        "producer_ms": fragment.producer_ms,
        "server_ms": fragment.server_ms,
        "tags": fragment.tags,
        "truncated": fragment.truncated,
        "tracks": {
            name: {"track_number": t.track_number, "blocks": len(t.blocks), "bytes": t.nbytes}
            for name, t in fragment.tracks.items()
        },
    }


def _collect(extraction: _Extraction, fragment: Fragment, wanted: dict[str, str]) -> None:
    extraction.truncated |= fragment.truncated
    if fragment.error is not None:
        error = fragment.error
        extraction.errors.append({
            "index": fragment.index, "fragment_number": fragment.fragment_number,
            "code": error.code, "error_id": error.error_id, "message": error.message,
        })
        return
    for name, audio in fragment.tracks.items():
        if name in extraction.codecs:  # a track is judged where it first appears
            continue
        extraction.codecs[name] = audio.codec_id
        if is_audio(audio):
            extraction.audio_names.add(name)
        else:
            extraction.warnings.append(f"track {name} is {audio.codec_id}, not audio: not written")
    reason = _skip_reason(fragment, wanted)
    if reason is not None:
        extraction.skipped.append({
            "index": fragment.index, "fragment_number": fragment.fragment_number, "reason": reason,
        })
        return
    extraction.fragments.append(_fragment_row(fragment))
    for name, audio in fragment.tracks.items():
        if not is_audio(audio):
            continue
        track = extraction.tracks.get(name)
        if track is None:
            track = extraction.tracks[name] = _Track(
                name, audio.codec_id, audio.sample_rate, audio.channels)
        elif (track.sample_rate, track.channels) != (audio.sample_rate, audio.channels):
            extraction.warnings.append(
                f"fragment {fragment.index}: track {name} is {audio.sample_rate} Hz x"
                f" {audio.channels}, written as {track.sample_rate} Hz x {track.channels}")
        track.blocks.extend(audio.blocks)


def _extract(body: Path, wanted: dict[str, str]) -> _Extraction:
    extraction = _Extraction()
    with body.open("rb") as stream:
        try:
            for fragment in iter_fragments(stream):
                _collect(extraction, fragment, wanted)
        except ParseError as exc:
            extraction.parse_error = {"message": exc.message, "offset": exc.offset}
    return extraction


WRITE_BATCH_BLOCKS = 4096


def _timeline(track: _Track) -> tuple[list[tuple[int, bytes]], list[tuple[int, int, int, int]]]:
    """Blocks in time order, and the holes as (index of the block after it, start_ms, end_ms,
    silent samples)."""
    blocks = track.blocks
    times = np.fromiter((t for t, _ in blocks), dtype=np.int64, count=len(blocks))
    if len(times) > 1 and (np.diff(times) < 0).any():  # KVS bodies are nearly always in order
        order = np.argsort(times, kind="stable")  # stable: equal times keep body order
        blocks, times = [blocks[i] for i in order.tolist()], times[order]
    lengths = np.fromiter((len(p) for _, p in blocks), dtype=np.int64, count=len(blocks))
    bytes_per_second = 2 * track.channels * track.sample_rate
    # A hole is where the next block starts at least 1 ms after this one ends, in exact integers
    # (timestamps are whole ms: less is rounding); only the few holes need exact fractions.
    late = (times[1:] - times[:-1]) * bytes_per_second - lengths[:-1] * 1000 >= bytes_per_second
    holes = []
    for i in (np.flatnonzero(late) + 1).tolist():
        end_ms = int(times[i - 1]) + Fraction(int(lengths[i - 1]) * 1000, bytes_per_second)
        next_ms = int(times[i])
        samples = round((next_ms - end_ms) * track.sample_rate / 1000)
        holes.append((i, round(end_ms), next_ms, samples))
    return blocks, holes


def _write_wav(path: Path, track: _Track, blocks: list, holes: list, fill_gaps: bool) -> int:
    """Write the WAV; returns the number of sample frames written."""
    silence_before = {i: samples for i, _, _, samples in holes} if fill_gaps else {}
    written = 0
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(track.channels)
        wav.setsampwidth(2)
        wav.setframerate(track.sample_rate)
        # Runs of blocks between holes go out in batches: one write per few thousand blocks,
        # not one per block, with the memory of one batch.
        cuts = sorted({0, len(blocks), *silence_before, *range(0, len(blocks), WRITE_BATCH_BLOCKS)})
        frame = 2 * track.channels
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            if a in silence_before:  # in pieces: a long allowed hole must not need its size in memory
                silence, piece = frame * silence_before[a], _SILENCE_PIECE - _SILENCE_PIECE % frame
                for start in range(0, silence, piece):
                    wav.writeframesraw(bytes(min(piece, silence - start)))
                written += silence
            data = b"".join(payload for _, payload in blocks[a:b])
            wav.writeframesraw(data)
            written += len(data)
    return written // (2 * track.channels)


def _check(extraction: _Extraction, fill_gaps: bool, max_gap_s: float) -> list:
    """The tracks' timelines, or Refused before anything is written."""
    if extraction.codecs and not extraction.audio_names:
        tracks = ", ".join(f"{name} ({codec})" for name, codec in extraction.codecs.items())
        raise Refused(f"no audio track in the body, only {tracks}; nothing written")
    timelines = []
    for track in extraction.tracks.values():
        blocks, holes = _timeline(track)
        longest = max(holes, key=lambda hole: hole[2] - hole[1], default=None)
        if fill_gaps and longest is not None and longest[2] - longest[1] > max_gap_s * 1000:
            _, start_ms, end_ms, _ = longest
            raise Refused(f"track {track.name} has a {_shown_s(end_ms - start_ms)} s hole from producer "
                          f"time {start_ms} to {end_ms} ms; --fill-gaps fills at most --max-gap-s="
                          f"{_shown_s(max_gap_s * 1000)} s: raise it, or extract without --fill-gaps; nothing written")
        timelines.append((track, blocks, holes))
    return timelines


def _shown_s(ms: float) -> str:
    return f"{ms / 1000:.3f}".rstrip("0").rstrip(".")


def _write_outputs(timelines: list, out: Path, fill_gaps: bool) -> tuple[list, list]:
    out.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    track_rows, gap_rows = [], []
    for track, blocks, holes in timelines:
        stem = file_stem(track.name)
        while stem in taken:  # two names that sanitize alike must not overwrite each other
            stem += "_"
        taken.add(stem)
        samples = _write_wav(out / f"{stem}.wav", track, blocks, holes, fill_gaps)
        track_rows.append({
            "name": track.name, "file": f"{stem}.wav", "codec_id": track.codec_id,
            "sample_rate": track.sample_rate, "channels": track.channels,
            "blocks": len(blocks), "samples": samples,
            "duration_ms": samples * 1000 / track.sample_rate,
            "start_ms": blocks[0][0] if blocks else None,
            "end_ms": blocks[-1][0] if blocks else None,
        })
        gap_rows += [{"track": track.name, "start_ms": start, "end_ms": end} for _, start, end, _ in holes]
    return track_rows, gap_rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicelake extract",
        description="Extract per-track WAV files and summary.json from a saved KVS media body.")
    parser.add_argument("body", type=Path, help="a GetMedia / GetMediaForFragmentList body")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--contact-id", help="keep only fragments tagged with this ContactId")
    parser.add_argument("--transaction-id", help="keep only fragments tagged with this TransactionId")
    parser.add_argument("--fill-gaps", action="store_true", help="write silence into timeline holes")
    parser.add_argument("--max-gap-s", type=_seconds, default=DEFAULT_MAX_GAP_S, metavar="SECONDS",
                        help="longest hole --fill-gaps fills; a longer one (a producer clock that "
                             f"jumped) stops the extraction (default {DEFAULT_MAX_GAP_S:g})")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds >= 0: {text!r}")
    return value


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    wanted = {tag: value for tag, value in (("ContactId", args.contact_id),
                                             ("TransactionId", args.transaction_id)) if value is not None}
    try:
        extraction = _extract(args.body, wanted)
    except OSError as exc:
        print(f"voicelake extract: cannot read {args.body}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        timelines = _check(extraction, args.fill_gaps, args.max_gap_s)
    except Refused as refused:
        print(f"voicelake extract: {refused}", file=sys.stderr)
        return 1
    track_rows, gap_rows = _write_outputs(timelines, args.out, args.fill_gaps)
    summary = {
        "body": str(args.body),
        "filter": {"contact_id": args.contact_id, "transaction_id": args.transaction_id},
        "fragments": extraction.fragments,
        "skipped_fragments": extraction.skipped,
        "errors": extraction.errors,
        "tracks": track_rows,
        "gaps": gap_rows,
        "gaps_filled": args.fill_gaps,
        "truncated": extraction.truncated,
        "parse_error": extraction.parse_error,
        "warnings": extraction.warnings,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if extraction.parse_error is not None:
        error = extraction.parse_error
        print(f"voicelake extract: malformed body: {error['message']} at byte {error['offset']}"
              f" ({len(extraction.fragments)} fragments before it were written)", file=sys.stderr)
        return 1
    if extraction.truncated:
        print("voicelake extract: the body ends inside a fragment; its complete frames were written",
              file=sys.stderr)
    return 0
