"""What `voicelake export` costs: audio-hours per CPU-hour with and without librosa features.

Makes a demo lake (N seeded calls, `voicelake demo ... --write_raw_channels`), then runs, each in
its own child process so that CPU time (workers included) and peak RSS come from the OS:
  1. `voicelake export` on a day without calls (start-up, imports, runner: the fixed cost);
  2. `voicelake export --format hf` without features;
  3. the same with `--features logmel,mfcc`.
Then, in this process and on the same units' samples: the export's librosa features beside a
plain numpy reference (frames, rfft, the same mel matrix, log, DCT) and soxr resampling of the
same audio (the pipeline's own yardstick, shared/domain/dsp.md), so a user sees what a feature
costs against a known operation.  Prints one table of ratios; asserts nothing about time.

    python -m benchmarks.export [--connect-calls 8] [--chime-calls 4] [--call-seconds 300]
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf
import soxr

from benchmarks.measure import measured, seeded_world_arguments
from voicelake.export import ml_features
from voicelake.export.ml_features import FeatureOptions

ROOT = Path(__file__).resolve().parents[1]

RUNNER = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def numpy_features(y: np.ndarray, sr: int, o: FeatureOptions, mel_basis: np.ndarray,
                   dct: np.ndarray) -> dict[str, np.ndarray]:
    """Log-mel and MFCC as librosa defines them, in plain numpy: centred frames (zero padding),
    a Hann window padded to n_fft, |rfft|^2, the mel matrix, 10 log10 with an 80 dB floor, DCT-II."""
    hop, win = o.hop_length(sr), o.win_length(sr)
    window = np.zeros(o.n_fft)
    start = (o.n_fft - win) // 2
    window[start:start + win] = np.hanning(win + 1)[:-1]  # periodic Hann, as scipy's get_window
    padded = np.pad(y, o.n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, o.n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    db = 10 * np.log10(np.maximum(power @ mel_basis.T, 1e-10))
    db = np.maximum(db, db.max() - o.top_db)
    return {"logmel": db.astype(np.float32), "mfcc": (db @ dct.T).astype(np.float32)}


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    k, n = np.arange(n_out)[:, None], np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2 / n_in)
    m[0] /= np.sqrt(2)
    return m


def unit_samples(out: Path) -> list[np.ndarray]:
    units = []
    for shard in sorted(out.glob("data/*.parquet")):
        for audio in pq.read_table(shard, columns=["audio"]).column("audio").to_pylist():
            units.append(sf.read(io.BytesIO(audio["bytes"]), dtype="float32")[0])
    return units


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    config, work, _ = seeded_world_arguments("voicelake-bench-export-", connect_calls=8, chime_calls=4,
                                             call_seconds=300.0)
    demo = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", f"--workdir={work / 'demo'}",
                           f"--connect-calls={config.connect_calls}", f"--chime-calls={config.chime_calls}",
                           f"--call-seconds={config.call_seconds}", "--write_raw_channels"],
                          capture_output=True, text=True, cwd=ROOT)
    if demo.returncode:
        raise SystemExit(demo.stderr[-3000:])
    lake, env = work / "demo/lake", dict(os.environ)

    def export(name: str, date: str, *args: str) -> dict:
        return measured([sys.executable, "-m", "pipeline.cli", "export", f"--lake={lake}",
                         f"--out={work / name}", f"--dates={date}", "--format=hf", *args, *RUNNER], env)

    empty = export("empty", "2000-01-01")
    plain = export("plain", config.date)
    feats = export("features", config.date, "--features=logmel,mfcc")
    units = unit_samples(work / "plain")
    audio_h = sum(len(u) for u in units) / 16000 / 3600
    print(f"{len(units)} units, {audio_h * 60:.1f} audio-minutes of speech (16 kHz) from "
          f"{config.connect_calls + config.chime_calls} calls of {config.call_seconds:.0f} s, "
          f"{os.cpu_count()} CPUs")
    print(f"{'export (FnApiRunner, 2 workers)':40} {'CPU s':>7} {'wall s':>7} {'audio-h/CPU-h':>14} "
          f"{'marginal':>9} {'peak RSS MB':>11}")
    for name, m in (("day without calls (fixed cost)", empty), ("hf, no features", plain),
                    ("hf, --features logmel,mfcc", feats)):
        whole = audio_h / (m["cpu_s"] / 3600) if m is not empty else float("nan")
        marginal = audio_h / max(m["cpu_s"] - empty["cpu_s"], 1e-9) * 3600 if m is not empty else float("nan")
        print(f"{name:40} {m['cpu_s']:7.1f} {m['wall_s']:7.1f} {whole:14.0f} {marginal:9.0f} "
              f"{m['peak_rss_mb']:11.0f}")
    extra = feats["cpu_s"] - plain["cpu_s"]
    print(f"features add {extra:.1f} CPU s: {extra / audio_h:.1f} CPU s per audio-hour inside the export; "
          f"marginal rate with features / without: "
          f"{(plain['cpu_s'] - empty['cpu_s']) / max(feats['cpu_s'] - empty['cpu_s'], 1e-9):.2f}")

    import librosa

    o = FeatureOptions(names=("logmel", "mfcc"))
    ml_features.warm_up(o, 16000)
    mel_basis = librosa.filters.mel(sr=16000, n_fft=o.n_fft, n_mels=o.n_mels)
    dct = dct_matrix(o.n_mfcc, o.n_mels)
    rosa = cpu(lambda: [ml_features.compute(u, 16000, o) for u in units])
    plain_np = cpu(lambda: [numpy_features(u, 16000, o, mel_basis, dct) for u in units])
    resample = cpu(lambda: [soxr.resample(u, 16000, 8000, "HQ") for u in units])
    worst = max(float(np.abs(ml_features.compute(u, 16000, o)["logmel"] -
                             numpy_features(u, 16000, o, mel_basis, dct)["logmel"]).max()) for u in units[:50])
    print(f"\n{'same samples, this process':40} {'CPU s/audio-h':>14} {'vs numpy':>9}")
    for name, seconds in (("librosa logmel+mfcc (the export's)", rosa),
                          ("numpy reference logmel+mfcc", plain_np),
                          ("soxr HQ resample 16k->8k (yardstick)", resample)):
        print(f"{name:40} {seconds / audio_h:14.2f} {seconds / plain_np:8.2f}x")
    print(f"numpy reference vs librosa log-mel: largest difference {worst:.2e} dB over 50 units")


if __name__ == "__main__":
    main()
