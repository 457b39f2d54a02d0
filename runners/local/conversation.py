"""Two-party phone conversations for the local world: turns, pauses and some cross-talk.

Channel 0 is the customer, channel 1 the agent (the project's convention).  The speech comes either
from the clips committed under ``speech/`` (espeak-ng, 8 kHz; see ``speech/clips.json``) or from a
real two-leg recording, so that talk time, silence and overlap features mean something.
"""
from __future__ import annotations

import json
import random
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 8000
SPEECH_DIR = Path(__file__).with_name("speech")


def read_wav_s16(path: str | Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != SAMPLE_RATE:
            raise ValueError(f"{path}: expected 8 kHz mono 16-bit PCM")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def load_clips() -> dict[str, list[np.ndarray]]:
    meta = json.loads((SPEECH_DIR / "clips.json").read_text())
    clips: dict[str, list[np.ndarray]] = {"customer": [], "agent": []}
    for name in sorted(meta):
        clips[meta[name]["role"]].append(read_wav_s16(SPEECH_DIR / name))
    return clips


def synthesise(rng: random.Random, clips: dict[str, list[np.ndarray]], *, min_seconds: float,
               first_speaker: str = "agent") -> tuple[np.ndarray, np.ndarray]:
    """Alternate turns until ``min_seconds`` of conversation; return (customer, agent) int16.

    Pauses between turns are 0.3-1.5 s; about one turn in five starts before the other party has
    finished (cross-talk of 0.2-0.8 s), and short backchannels ("mm hmm") overlap the other side.
    """
    timeline: list[tuple[str, int, np.ndarray]] = []
    speaker, cursor = first_speaker, int(rng.uniform(0.2, 0.8) * SAMPLE_RATE)
    while not timeline or cursor < min_seconds * SAMPLE_RATE:  # at least one turn
        clip = rng.choice(clips[speaker])
        timeline.append((speaker, cursor, clip))
        if rng.random() < 0.2 and len(clip) > SAMPLE_RATE:  # a backchannel from the listener
            other = "agent" if speaker == "customer" else "customer"
            short = min(clips[other], key=len)
            timeline.append((other, cursor + len(clip) // 2, short))
        end = cursor + len(clip)
        if rng.random() < 0.2:
            cursor = end - int(rng.uniform(0.2, 0.8) * SAMPLE_RATE)
        else:
            cursor = end + int(rng.uniform(0.3, 1.5) * SAMPLE_RATE)
        speaker = "agent" if speaker == "customer" else "customer"
    total = max(start + len(clip) for _, start, clip in timeline) + int(0.5 * SAMPLE_RATE)
    channels = {"customer": np.zeros(total, np.int32), "agent": np.zeros(total, np.int32)}
    for who, start, clip in timeline:
        channels[who][start:start + len(clip)] += clip
    # A telephone line is never digitally silent: a faint noise floor (about -66 dBFS) keeps the
    # silence and SNR features honest.
    noise = np.random.default_rng(rng.getrandbits(32))
    for who in channels:
        channels[who] += noise.integers(-32, 33, total, dtype=np.int32)
    return tuple(np.clip(channels[w], -32768, 32767).astype(np.int16) for w in ("customer", "agent"))


def from_recording(customer_wav: str | Path, agent_wav: str | Path, max_seconds: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A real two-leg call (e.g. shared/samples/audio/*_caller.wav and *_agent.wav)."""
    customer, agent = read_wav_s16(customer_wav), read_wav_s16(agent_wav)
    n = min(len(customer), len(agent))
    if max_seconds is not None:
        n = min(n, int(max_seconds * SAMPLE_RATE))
    return customer[:n].copy(), agent[:n].copy()


def placed_turns(clips: dict[str, list[np.ndarray]], rng: np.random.Generator, *, turns: int = 10,
                 pause_s: float = 1.2) -> tuple[list[np.ndarray], list[list[tuple[int, int]]]]:
    """(customer, agent) int16 of clips taking turns with ``pause_s`` between them, and each
    channel's speech spans in samples: the clips' audible extent, the truth a VAD is scored on."""
    at, spans, parts = int(0.5 * SAMPLE_RATE), ([], []), ([], [])
    for turn in range(turns):
        c = turn % 2
        choices = clips[("customer", "agent")[c]]
        clip = choices[int(rng.integers(0, len(choices)))]
        loud = np.flatnonzero(np.abs(clip.astype(np.int32)) > 300)
        spans[c].append((at + int(loud[0]), at + int(loud[-1]) + 1))
        parts[c].append((at, clip))
        at += len(clip) + int(pause_s * SAMPLE_RATE)
    channels = []
    for c in range(2):
        x = np.zeros(at, np.int32)
        for start, clip in parts[c]:
            x[start:start + len(clip)] += clip
        x += rng.integers(-24, 25, at)  # a line is never digitally silent
        channels.append(x.clip(-32768, 32767).astype(np.int16))
    return channels, [list(s) for s in spans]
