"""What real calls carry besides speech, made from a seed: coloured noise at a chosen SNR, hold
music, short loud non-speech sounds, and a far-off second voice.  The hard conditions of
``benchmarks/vad.py`` and of the VAD's tests; never used by the production path.

Every function returns int16 at 8 kHz unless it says otherwise, and is deterministic in its ``rng``.
"""
from __future__ import annotations

import numpy as np

RATE = 8000
FRAME = 160  # 20 ms


def frames_of(spans, n: int) -> np.ndarray:
    """A bool per 20 ms frame of ``n`` samples: True where any (start, end) sample span reaches."""
    mask = np.zeros(-(-n // FRAME), bool)
    for a, b in spans:
        mask[a // FRAME:-(-b // FRAME)] = True
    return mask


def segment_frames(segments: list[dict], channel: int, n: int) -> np.ndarray:
    """The frames of ``n`` samples that a channel's rows of the segments table cover."""
    return frames_of([(r["start_ms"] * RATE // 1000, r["end_ms"] * RATE // 1000) for r in segments
                      if r["channel"] == channel], n)


def frame_f1(found: np.ndarray, truth: np.ndarray) -> float:
    """F1 of speech frames against true ones (1.0 when both are empty)."""
    return float(2 * (found & truth).sum() / max(found.sum() + truth.sum(), 1)) if truth.any() or found.any() else 1.0


def coloured_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power float noise: ``white`` (flat), ``pink`` (1/f power, desk and room noise) or
    ``brown`` (1/f², rumble), shaped in the frequency domain."""
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    slope = {"pink": 0.5, "brown": 1.0}[kind]  # amplitude ~ f^-slope
    spectrum = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum *= np.where(f > 0, np.maximum(f, 20.0) ** -slope, 0.0)  # no DC, no endless rumble
    shaped = np.fft.irfft(spectrum, n)
    return shaped / np.sqrt(np.mean(shaped ** 2))


def speech_power(x: np.ndarray, speech: np.ndarray) -> float:
    """Mean power of ``x`` over the 20 ms frames marked as speech (a bool per frame)."""
    whole = min(len(x) // FRAME, len(speech))
    frames = x[:whole * FRAME].astype(np.float64).reshape(-1, FRAME)
    return float(np.mean(frames[speech[:whole]] ** 2))


def add_noise(x: np.ndarray, speech: np.ndarray, kind: str, snr_db: float,
              rng: np.random.Generator) -> np.ndarray:
    """``x`` with noise of ``kind`` at ``snr_db`` below its active speech level (ITU P.56 style:
    the speech power over the frames that are speech, not over the whole call)."""
    gain = np.sqrt(speech_power(x, speech) / 10 ** (snr_db / 10))
    return _s16(x + gain * coloured_noise(kind, len(x), rng))


def hold_music(seconds: float, rng: np.random.Generator, level_dbfs: float = -20.0) -> np.ndarray:
    """Hold music: a melody of harmonic notes with a piano-like decay over a sustained chord, each
    note 0.2-0.6 s, at about ``level_dbfs`` RMS."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = np.zeros(n)
    root = 220.0 * 2 ** (rng.integers(0, 12) / 12)
    chord = [root * 2 ** (k / 12) for k in (0, 4, 7)]
    for f in chord:  # the pad under the melody
        out += 0.25 * np.sin(2 * np.pi * f * t) * (0.8 + 0.2 * np.sin(2 * np.pi * 0.25 * t))
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    at = 0
    while at < n:
        length = int(rng.uniform(0.2, 0.6) * RATE)
        f = root * 2 * 2 ** (scale[rng.integers(0, len(scale))] / 12)
        k = np.arange(min(length, n - at)) / RATE
        note = sum(np.sin(2 * np.pi * f * h * k) / h for h in (1, 2, 3, 4) if f * h < RATE / 2)
        out[at:at + len(k)] += note * np.exp(-3.0 * k)
        at += length
    out *= 10 ** (level_dbfs / 20) * 32768 / np.sqrt(np.mean(out ** 2))
    return _s16(out)


def transients(n: int, count: int, rng: np.random.Generator, level_dbfs: float = -10.0,
               seconds: tuple[float, float] = (0.1, 0.3)) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``count`` short loud non-speech sounds (knocks, a door, a dropped handset: decaying noise
    bursts of ``seconds``, long enough that a level gate keeps them) in ``n`` samples of silence,
    and their (start, end) sample spans."""
    out = np.zeros(n)
    spans = []
    for start in np.sort(rng.choice(max(n - RATE, 1), size=count, replace=False)):
        length = int(rng.uniform(*seconds) * RATE)
        k = np.arange(length)
        burst = rng.standard_normal(length) * np.exp(-k / (length / 4))
        out[start:start + length] += burst * 10 ** (level_dbfs / 20) * 32768 * 2
        spans.append((int(start), int(start + length)))
    return _s16(out), spans


def mix(*signals: np.ndarray) -> np.ndarray:
    """Signals summed sample by sample (the longest sets the length), clipped to int16."""
    n = max(len(s) for s in signals)
    out = np.zeros(n)
    for s in signals:
        out[:len(s)] += s
    return _s16(out)


def scaled(x: np.ndarray, db: float) -> np.ndarray:
    return _s16(x.astype(np.float64) * 10 ** (db / 20))


def _s16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)
