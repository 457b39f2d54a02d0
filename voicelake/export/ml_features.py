"""Model-input features of a unit's samples, with librosa: log-mel spectrogram and MFCC.

librosa is the job's reference implementation of both, so the arrays equal what an ML engineer gets
from ``librosa.feature.melspectrogram`` / ``librosa.feature.mfcc`` on the same samples with the same
parameters (benchmarks/export.py measures what that costs beside a plain numpy version).  Arrays
are (frames, coefficients), float32: time first, as models and lhotse take them.

Window and hop are given in ms so that one set of options means the same at 8 and 16 kHz; the
defaults are the usual ASR front end: 25 ms Hann windows every 10 ms, 80 mel bands, 13 MFCCs.
Frames are centred (librosa's default): a unit of n samples has 1 + n // hop frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAMES = ("logmel", "mfcc")


@dataclass(frozen=True)
class FeatureOptions:
    names: tuple[str, ...] = ()
    n_mels: int = 80
    n_mfcc: int = 13
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    fmin: float = 0.0
    fmax: float | None = None   # None: half the sample rate
    top_db: float | None = 80.0  # librosa.power_to_db's floor below each unit's peak; None: none

    def __post_init__(self):
        unknown = [n for n in self.names if n not in NAMES]
        if unknown:
            raise ValueError(f"unknown feature(s) {', '.join(unknown)}: choose from {', '.join(NAMES)}")
        if min(self.n_mels, self.n_mfcc, self.win_ms, self.hop_ms, self.n_fft) <= 0:
            raise ValueError("feature sizes must be positive")
        if self.n_mfcc > self.n_mels:
            raise ValueError("n_mfcc cannot exceed n_mels")

    def win_length(self, sr: int) -> int:
        return int(round(self.win_ms * sr / 1000))

    def hop_length(self, sr: int) -> int:
        return int(round(self.hop_ms * sr / 1000))

    def check(self, sr: int) -> None:
        if self.win_length(sr) > self.n_fft:
            raise ValueError(f"a {self.win_ms:g} ms window is {self.win_length(sr)} samples at {sr} Hz, "
                             f"more than n_fft={self.n_fft}")

    def frames(self, n_samples: int, sr: int) -> int:
        return 1 + n_samples // self.hop_length(sr)

    def width(self, name: str) -> int:
        return self.n_mels if name == "logmel" else self.n_mfcc

    def mel_kwargs(self, sr: int) -> dict:
        """The keyword arguments of librosa.feature.melspectrogram (and so of mfcc(y=...))."""
        return dict(n_fft=self.n_fft, hop_length=self.hop_length(sr), win_length=self.win_length(sr),
                    window="hann", center=True, power=2.0, n_mels=self.n_mels, fmin=self.fmin,
                    fmax=self.fmax)

    def describe(self, sr: int) -> str:
        kinds = {"logmel": f"log-mel spectrogram ({self.n_mels} bands, dB: librosa.power_to_db, ref 1.0, "
                           f"top_db {self.top_db})",
                 "mfcc": f"MFCC ({self.n_mfcc} coefficients, DCT-II ortho of that log-mel)"}
        return (", ".join(kinds[n] for n in self.names) +
                f"; {self.win_ms:g} ms Hann window ({self.win_length(sr)} samples), {self.hop_ms:g} ms hop "
                f"({self.hop_length(sr)} samples), n_fft {self.n_fft}, centred frames, "
                f"{self.fmin:g} Hz to {self.fmax or sr / 2:g} Hz, float32, shape (frames, coefficients)")


def warm_up(options: FeatureOptions, sr: int) -> None:
    """librosa compiles and caches on first use (numba): pay it once per worker, not per unit."""
    if options.names:
        compute(np.zeros(sr // 10, np.float32), sr, options)


def compute(y: np.ndarray, sr: int, options: FeatureOptions) -> dict[str, np.ndarray]:
    """float32 samples in [-1, 1) -> {name: (frames, coefficients) float32} for options.names."""
    if not options.names:
        return {}
    import librosa  # only when features are asked for: ~1.7 s to import

    options.check(sr)
    power = librosa.feature.melspectrogram(y=y, sr=sr, **options.mel_kwargs(sr))
    db = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=options.top_db)
    out = {}
    if "logmel" in options.names:
        out["logmel"] = np.ascontiguousarray(db.T, dtype=np.float32)
    if "mfcc" in options.names:
        # librosa.feature.mfcc(y=...) is exactly this DCT of this log-mel; sharing it saves the STFT.
        out["mfcc"] = np.ascontiguousarray(
            librosa.feature.mfcc(S=db, n_mfcc=options.n_mfcc).T, dtype=np.float32)
    return out
