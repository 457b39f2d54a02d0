"""One export shard: its calls' audio read from the lake, cut into units, written in a format.

An export is a set of shards per split.  Calls are planned first (units and split, metadata only),
then given to shards in call-id order by their estimated output size, so every shard is bounded,
its content is the same on every runner, and no audio crosses a shuffle: the shard writer reads
each call's WAV itself.  A call that cannot be exported (no WAV, no 8 kHz source, unreadable
audio) becomes one failure record with a reason; a unit outside the audio becomes one too.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from voicelake import audio, storage
from voicelake.export import lake, manifests, ml_features
from voicelake.export.lake import LakeCall
from voicelake.export.ml_features import FeatureOptions
from voicelake.export.units import Segment, SplitOptions, Unit, UnitOptions, make_units, split_of
from voicelake.layout import join

SHARD_NAME = "{split}-{shard:05d}-of-{count:05d}"
EVERY_PHASE = "every"  # the phase counted for channel and call units, which span them all


@dataclass(frozen=True)
class ExportSettings:
    lake: str
    out: str
    format: str = "hf"
    sample_rate: int = 16000
    units: UnitOptions = field(default_factory=UnitOptions)
    splits: SplitOptions = field(default_factory=SplitOptions)
    features: FeatureOptions = field(default_factory=FeatureOptions)
    shard_mb: int = 256

    def __post_init__(self):
        if self.format not in manifests.FORMATS:
            raise ValueError(f"--format must be one of {', '.join(manifests.FORMATS)}")
        if self.features.names and self.units.kind == "call":
            raise ValueError("features are per channel: use segment or channel units with --features")
        if self.features.names and self.format == "nemo":
            raise ValueError("NeMo manifests carry no arrays (NeMo computes its own features): "
                             "use --format hf or lhotse with --features")
        if self.features.names:
            self.features.check(self.sample_rate)

    def data_files(self, split: str) -> str:
        """The glob of a split's files, for the dataset card."""
        return {"hf": f"data/{split}-*.parquet", "lhotse": f"cuts_{split}-*.jsonl",
                "nemo": f"manifest_{split}-*.jsonl"}[self.format]


@dataclass(frozen=True)
class CallPlan:
    call: LakeCall
    split: str
    units: tuple[Unit, ...]
    estimated_bytes: int


def plan_call(call: LakeCall, settings: ExportSettings) -> CallPlan:
    roles = {c["channel"]: c.get("role") for c in call.channels}
    segments = [Segment(int(s["channel"]), int(s["start_ms"]), int(s["end_ms"]), s["phase"])
                for s in call.segments]
    duration = int(call.call.get("duration_ms") or 0)
    units = tuple(make_units(call.call_id, duration, roles, segments, settings.units))
    channels = len(roles) if settings.units.kind == "call" else 1
    per_ms = settings.sample_rate * 2 * channels / 1000
    if settings.features.names:
        per_ms += sum(settings.features.width(n) for n in settings.features.names) * 4 / settings.features.hop_ms
    if settings.format == "hf":
        estimate = sum(u.duration_ms for u in units) * per_ms
    else:  # whole channels are written once, units point into them
        estimate = duration * settings.sample_rate * 2 * sum(
            len(roles) if c is None else 1 for c in {u.channel for u in units}) / 1000
    return CallPlan(call, split_of(call.call_id, call.date, settings.splits), units, int(estimate))


def assign_shards(sizes: list[tuple[str, int]], shard_bytes: int) -> dict[str, tuple[int, int]]:
    """{call_id: (shard, shard count)}: calls in id order, a new shard when the next call would
    take the current one past shard_bytes (a call is never split)."""
    shards: list[list[str]] = []
    size = 0
    for call_id, estimate in sorted(sizes):
        if not shards or (size + estimate > shard_bytes and shards[-1]):
            shards.append([])
            size = 0
        shards[-1].append(call_id)
        size += estimate
    return {call_id: (n, len(shards)) for n, ids in enumerate(shards) for call_id in ids}


@dataclass
class ShardResult:
    stats: dict
    failures: list[dict]
    paths: list[str]


class CallFailure(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def failure(plan: CallPlan, reason: str, detail: str, unit: str | None = None) -> dict:
    return {"call_id": plan.call.call_id, "unit": unit, "date": plan.call.date,
            "voice_connector_id": plan.call.partition, "split": plan.split, "reason": reason,
            "detail": detail}


def call_audio(plan: CallPlan, settings: ExportSettings) -> np.ndarray:
    """The call's int16 (n, channels) samples at the export's rate, from the file that has it.

    At the lake's source rate, the un-normalised ``<call_id>.8k.wav`` (kept by ``voicelake run`` unless
    ``--no_write_raw_channels``).  It is never derived from the ML WAV: that one is DC-free,
    peak-normalised and resampled, so a derived copy would not be the source audio it claims to be.
    """
    call = plan.call.call
    if settings.sample_rate == call.get("sample_rate"):
        path, what = lake.wav_uri(settings.lake, plan.call, source=True), "8 kHz source WAV"
    elif settings.sample_rate == call.get("target_sample_rate"):
        path, what = lake.wav_uri(settings.lake, plan.call), "ML WAV"
    else:
        raise CallFailure("rate_unavailable", f"the lake has this call at {call.get('sample_rate')} Hz "
                          f"(source) and {call.get('target_sample_rate')} Hz (ML WAV), not "
                          f"{settings.sample_rate} Hz")
    try:
        data = storage.read_bytes(path)
    except Exception as exc:  # noqa: BLE001 - which exceptions depends on the storage
        if not lake.is_missing(exc):
            raise
        if "source" in what:
            raise CallFailure("no_source_wav", f"{path} does not exist: the lake was written with "
                              "--no_write_raw_channels; re-run voicelake run without it for 8 kHz source "
                              f"audio, or export at the ML WAV's {call.get('target_sample_rate')} Hz") from None
        raise CallFailure("no_wav", f"{path} does not exist") from None
    try:
        samples, rate = lake.read_wav(data)
    except Exception as exc:  # noqa: BLE001 - wave raises several types on bad bytes
        raise CallFailure("unreadable_wav", f"{path}: {exc}") from None
    if rate != settings.sample_rate:
        raise CallFailure("wav_rate_mismatch", f"{path} is at {rate} Hz, the calls table says "
                          f"{settings.sample_rate} Hz")
    wanted = {c["channel"] for c in plan.call.channels}
    if wanted and max(wanted) >= samples.shape[1]:
        raise CallFailure("wav_channels_mismatch", f"{path} has {samples.shape[1]} channel(s), the "
                          f"channels table has channel {max(wanted)}")
    return samples


def unit_samples(samples: np.ndarray, unit: Unit, rate: int) -> np.ndarray:
    """The unit's int16 samples: one column for a channel unit, all columns for a call unit."""
    start, end = unit.start_ms * rate // 1000, -(-unit.end_ms * rate // 1000)
    span = samples[start:min(end, len(samples))]
    return span if unit.channel is None else span[:, unit.channel]


class _Stats:
    def __init__(self):
        self.units = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        self.phases = defaultdict(lambda: [0, 0])
        self.calls = defaultdict(int)
        self.shards = defaultdict(int)
        self.vad = set()

    def add(self, split: str, role: str | None, phase: str | None, ms: int) -> None:
        for entry in (self.units[split][role or "unknown"], self.phases[phase or EVERY_PHASE]):
            entry[0] += 1
            entry[1] += ms

    def as_dict(self) -> dict:
        return {"units": {s: {r: list(v) for r, v in roles.items()} for s, roles in self.units.items()},
                "phases": {p: list(v) for p, v in self.phases.items()}, "calls": dict(self.calls),
                "shards": dict(self.shards), "vad_methods": sorted(self.vad)}


def write_shard(plans: list[CallPlan], split: str, shard: int, count: int,
                settings: ExportSettings) -> ShardResult:
    """Write one shard's files; return its counts, failures and the paths written."""
    name = SHARD_NAME.format(split=split, shard=shard, count=count)
    rate, fmt, feats = settings.sample_rate, settings.format, settings.features
    stats, failures, paths = _Stats(), [], []
    hf_rows, lines = [], defaultdict(list)

    def put(relative: str, data: bytes) -> None:
        path = join(settings.out, relative)
        storage.write_bytes(path, data)
        paths.append(path)

    for plan in sorted(plans, key=lambda p: p.call.call_id):
        try:
            samples = call_audio(plan, settings)
        except CallFailure as problem:
            failures.append(failure(plan, problem.reason, problem.detail))
            continue
        stats.calls[split] += 1
        stats.vad.add(plan.call.call.get("vad_method") or "unknown")
        sources = _write_channel_wavs(plan, samples, rate, put) if fmt != "hf" else {}
        recording = plan_recording(plan, sources, samples, rate) if fmt == "lhotse" and sources else None
        for unit in plan.units:
            pcm = unit_samples(samples, unit, rate)
            if len(pcm) == 0:
                failures.append(failure(plan, "outside_audio", f"unit {unit.start_ms}-{unit.end_ms} ms "
                                        f"starts after the {len(samples)} samples of the WAV", unit.id))
                continue
            meta = manifests.unit_metadata(plan.call, unit, settings.units.kind, split, rate)
            # to_float gives the same values soundfile and librosa.load read from the WAV
            arrays = ml_features.compute(audio.to_float(pcm), rate, feats) if feats.names else {}
            stats.add(split, meta["role"] if unit.channel is not None else "call", unit.phase,
                      unit.duration_ms)
            if fmt == "hf":
                hf_rows.append({**meta, "audio": {"bytes": audio.wav_bytes(pcm, rate),
                                                  "path": f"{unit.id}.wav"}, **arrays})
            elif fmt == "nemo":
                lines["manifest"].append(manifests.nemo_line(meta, sources[unit.channel]))
            else:
                channels = list(range(samples.shape[1])) if unit.channel is None else [unit.channel]
                supervision = manifests.lhotse_supervision(meta, channels)
                keys = {}
                for feature, array in arrays.items():
                    key = f"features/{plan.call.date}/{unit.id}.{feature}.npy"
                    put(key, manifests.npy_bytes(array))
                    keys[feature] = (key, list(array.shape))
                lines["supervisions"].append(manifests.dumps(supervision))
                lines["cuts"].append(manifests.dumps(manifests.lhotse_cut(
                    supervision, recording, keys, feats.hop_ms / 1000)))
        if recording:
            lines["recordings"].append(manifests.dumps(recording))
    if fmt == "hf" and hf_rows:
        widths = {n: feats.width(n) for n in feats.names}
        put(f"data/{name}.parquet", manifests.hf_parquet(hf_rows, manifests.hf_schema(rate, widths)))
    for kind, kind_lines in lines.items():
        put(f"{kind}_{name}.jsonl", manifests.jsonl(kind_lines))
    stats.shards[split] += 1
    return ShardResult(stats.as_dict(), failures, paths)


def channel_wav_path(plan: CallPlan, channel: int | None) -> str:
    suffix = "" if channel is None else f"-{channel}"
    return f"audio/{plan.call.date}/{plan.call.call_id}{suffix}.wav"


def _write_channel_wavs(plan: CallPlan, samples: np.ndarray, rate: int, put) -> dict:
    """lhotse and NeMo point into whole recordings: one mono WAV per channel that has units (the
    speaker's channel alone), or one multi-channel WAV for call units.  {channel: relative path}."""
    sources = {}
    for channel in sorted({u.channel for u in plan.units}, key=lambda c: -1 if c is None else c):
        relative = channel_wav_path(plan, channel)
        put(relative, audio.wav_bytes(samples if channel is None else samples[:, channel], rate))
        sources[channel] = relative
    return sources


def plan_recording(plan: CallPlan, sources: dict, samples: np.ndarray, rate: int) -> dict:
    if None in sources:
        channel_sources = [(list(range(samples.shape[1])), sources[None])]
    else:
        channel_sources = [([c], path) for c, path in sorted(sources.items())]
    return manifests.lhotse_recording(plan.call.call_id, channel_sources, rate, len(samples))
