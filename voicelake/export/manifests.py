"""What an export writes, per unit and per shard: Hugging Face Parquet, lhotse and NeMo manifests.

Every unit carries the same labels and metadata in every format (``UNIT_COLUMNS``): identity and
provenance, where it sits in the call, and the call- and channel-level features a model builder
filters on.  No transcript exists, so no text field is written (none is invented).

Formats, under the output folder (paths inside manifests are relative to it):

- ``hf``: ``data/<split>-SSSSS-of-NNNNN.parquet``, one row per unit with an ``audio`` struct
  {bytes: a mono (stereo for call units) 16-bit WAV of the unit, path: ``<unit id>.wav``}, the
  metadata columns and, when asked, feature arrays; the Arrow schema carries the ``huggingface``
  metadata that makes ``load_dataset("parquet", ...)`` see ``audio`` as an ``Audio`` feature.
- ``lhotse``: ``recordings_<split>-….jsonl`` (one Recording per call, a mono WAV source per
  channel), ``supervisions_<split>-….jsonl`` (one SupervisionSegment per unit: recording, channel,
  start, duration) and ``cuts_<split>-….jsonl`` (one MonoCut per unit, with feature arrays as
  custom TemporalArrays stored as .npy files when asked).
- ``nemo``: ``manifest_<split>-….jsonl``, JSON lines with ``audio_filepath``, ``offset`` and
  ``duration`` (seconds) into the per-channel WAV, plus the metadata.

Bytes are deterministic: fixed key order, no clock, no random state.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from voicelake.export.lake import LakeCall
from voicelake.export.units import Unit

FORMATS = ("hf", "lhotse", "nemo")
ROW_GROUP_BYTES = 64 << 20  # HF's viewer and readers want row groups well under 100 MB

# name, Arrow type, description: the labels and metadata of every unit, in every format
UNIT_COLUMNS = (
    ("id", pa.string(), "Unit id: <call_id>-<channel>-<index> (the call id for whole-call units)."),
    ("split", pa.string(), "The split the unit's call belongs to."),
    ("call_id", pa.string(), "Amazon Connect ContactId or Chime Voice Connector TransactionId."),
    ("source", pa.string(), "connect or chime."),
    ("date", pa.string(), "UTC day of the call, YYYY-MM-DD."),
    ("voice_connector_id", pa.string(), "Chime Voice Connector id, or the Amazon Connect instance id."),
    ("unit", pa.string(), "segment, channel or call: how the unit was made."),
    ("channel", pa.int32(), "Channel of the call the audio comes from (0 = customer, 1 = agent by "
                            "convention); null for whole-call units."),
    ("role", pa.string(), "customer or agent; null when the records do not say, or for call units."),
    ("phase", pa.string(), "Phase of the call the unit's segments lie in: agent (an Amazon Connect "
                           "contact's conversation) or call (a one-phase call), or ivr, queue, hold "
                           "or after when --phases asks for them; null for channel and call units, "
                           "which span every phase."),
    ("start_ms", pa.int64(), "Start of the unit in the call, ms after the call's start_time."),
    ("end_ms", pa.int64(), "End of the unit in the call (exclusive), ms."),
    ("duration_ms", pa.int64(), "end_ms - start_ms."),
    ("sample_rate", pa.int32(), "Sample rate of the unit's audio, Hz."),
    ("segments", pa.int32(), "VAD segments of the unit's channel(s) that overlap the unit."),
    ("speech_ms", pa.int64(), "Speech (VAD) of the unit's channel(s) inside the unit, ms."),
    ("overlap_ms", pa.int64(), "Time inside the unit when another channel speaks too (cross-talk), ms."),
    ("talk_share", pa.float64(), "Channel: talk time / conversation duration; null for a contact "
                                 "that never reached an agent."),
    ("snr_db", pa.float64(), "Channel: speech level minus noise floor, dB; null without speech."),
    ("clipped_ratio", pa.float64(), "Channel: fraction of samples at or near full scale."),
    ("rms_dbfs_mean", pa.float64(), "Channel: mean speech level, dBFS."),
    ("channel_gap_ms", pa.int64(), "Channel: silence-filled holes (missing media), ms."),
    ("call_duration_ms", pa.int64(), "Length of the whole call, ms."),
    ("call_overlap_ratio", pa.float64(), "Call: share of the conversation with two or more channels "
                                         "speaking; null for a contact that never reached an agent."),
    ("call_gap_ms", pa.int64(), "Call: silence-filled holes over all channels, ms."),
    ("partial", pa.bool_(), "True when part of the call has no audio (missing fragments or gaps)."),
    ("vad_method", pa.string(), "The lake's voice-activity method behind segments and talk columns."),
)
CHANNEL_FEATURES = {"talk_share": "talk_share", "snr_db": "snr_db", "clipped_ratio": "clipped_ratio",
                    "rms_dbfs_mean": "rms_dbfs_mean", "channel_gap_ms": "gap_ms"}


def unit_metadata(call: LakeCall, unit: Unit, kind: str, split: str, sample_rate: int) -> dict:
    """The unit's labels, in UNIT_COLUMNS order."""
    channel = next((c for c in call.channels if c["channel"] == unit.channel), {})
    row = {
        "id": unit.id, "split": split, "call_id": call.call_id, "source": call.call["source"],
        "date": call.date, "voice_connector_id": call.partition, "unit": kind,
        "channel": unit.channel, "role": channel.get("role"), "phase": unit.phase,
        "start_ms": unit.start_ms, "end_ms": unit.end_ms, "duration_ms": unit.duration_ms,
        "sample_rate": sample_rate, "segments": unit.segments, "speech_ms": unit.speech_ms,
        "overlap_ms": unit.overlap_ms,
        **{name: channel.get(column) for name, column in CHANNEL_FEATURES.items()},
        "call_duration_ms": call.call.get("duration_ms"),
        "call_overlap_ratio": call.call.get("overlap_ratio"), "call_gap_ms": call.call.get("gap_ms"),
        "partial": call.call.get("partial"), "vad_method": call.call.get("vad_method"),
    }
    assert tuple(row) == tuple(name for name, _, _ in UNIT_COLUMNS)
    return row


def seconds(ms: int) -> float:
    return ms / 1000


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)


def _clean(value):
    """JSON has no NaN; a NaN feature is a missing one."""
    return None if isinstance(value, float) and value != value else value


# --- Hugging Face ---------------------------------------------------------------------------

AUDIO_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def feature_type(width: int) -> pa.DataType:
    return pa.list_(pa.list_(pa.float32(), width))


def hf_schema(sample_rate: int, features: dict[str, int]) -> pa.Schema:
    """Arrow schema of the shards, with the ``huggingface`` metadata ``datasets`` reads."""
    fields = [pa.field("audio", AUDIO_TYPE)]
    fields += [pa.field(name, type_, metadata={b"description": text.encode()})
               for name, type_, text in UNIT_COLUMNS]
    fields += [pa.field(name, feature_type(width)) for name, width in features.items()]
    hf = {"audio": {"sampling_rate": sample_rate, "_type": "Audio"}}
    hf.update({name: {"dtype": hf_dtype(type_), "_type": "Value"} for name, type_, _ in UNIT_COLUMNS})
    hf.update({name: {"feature": {"feature": {"dtype": "float32", "_type": "Value"}, "length": width,
                                  "_type": "List"}, "_type": "List"}
               for name, width in features.items()})
    return pa.schema(fields, metadata={b"huggingface": json.dumps({"info": {"features": hf}}).encode()})


def hf_dtype(t: pa.DataType) -> str:
    return {pa.string(): "string", pa.int32(): "int32", pa.int64(): "int64", pa.float64(): "float64",
            pa.bool_(): "bool"}[t]


def _feature_column(arrays: list[np.ndarray], width: int) -> pa.Array:
    flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0, np.float32)
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets),
                                    pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), width))


def hf_parquet(rows: list[dict], schema: pa.Schema) -> bytes:
    """Rows ({column: value, "audio": {...}, feature: (frames, width) array}) -> Parquet bytes.

    Row groups close at ROW_GROUP_BYTES of audio and features, so a shard of long call units
    still reads a bounded amount at a time.
    """
    buffer = io.BytesIO()
    feature_names = [f.name for f in schema if f.name not in ("audio",) and pa.types.is_list(f.type)]
    with pq.ParquetWriter(buffer, schema, compression="snappy") as writer:
        group: list[dict] = []
        size = 0
        for row in rows + [None]:
            if row is not None:
                group.append(row)
                size += len(row["audio"]["bytes"]) + sum(row[n].nbytes for n in feature_names)
            if group and (row is None or size >= ROW_GROUP_BYTES):
                columns = {f.name: pa.array([_clean(r[f.name]) for r in group], f.type)
                           for f in schema if f.name not in feature_names}
                for name in feature_names:
                    columns[name] = _feature_column([r[name] for r in group],
                                                    schema.field(name).type.value_type.list_size)
                writer.write_table(pa.table([columns[f.name] for f in schema], schema=schema))
                group, size = [], 0
    return buffer.getvalue()


# --- NeMo -----------------------------------------------------------------------------------

def nemo_line(meta: dict, audio_filepath: str) -> str:
    """One NeMo manifest line: the audio span in seconds, then the unit's labels."""
    head = {"audio_filepath": audio_filepath, "offset": seconds(meta["start_ms"]),
            "duration": seconds(meta["duration_ms"])}
    return dumps({**head, **{k: _clean(v) for k, v in meta.items()}})


# --- lhotse ---------------------------------------------------------------------------------

def lhotse_recording(call_id: str, sources: list[tuple[list[int], str]], sample_rate: int,
                     num_samples: int) -> dict:
    """A lhotse Recording: the call, one WAV source per channel (or one for every channel)."""
    return {
        "id": call_id,
        "sources": [{"type": "file", "channels": channels, "source": path} for channels, path in sources],
        "sampling_rate": sample_rate, "num_samples": num_samples,
        "duration": num_samples / sample_rate,
        "channel_ids": sorted(c for channels, _ in sources for c in channels),
    }


def lhotse_supervision(meta: dict, channels: list[int]) -> dict:
    """A lhotse SupervisionSegment for the unit; the speaker is the call's channel (no identity)."""
    channel = channels[0] if len(channels) == 1 else channels
    speaker = meta["call_id"] if meta["channel"] is None else f"{meta['call_id']}-{meta['channel']}"
    return {"id": meta["id"], "recording_id": meta["call_id"], "start": seconds(meta["start_ms"]),
            "duration": seconds(meta["duration_ms"]), "channel": channel, "speaker": speaker,
            "custom": {k: _clean(v) for k, v in meta.items() if k not in ("id", "call_id")}}


def lhotse_cut(supervision: dict, recording: dict, arrays: dict[str, tuple[str, list[int]]],
               frame_shift_s: float) -> dict:
    """A lhotse MonoCut (MultiCut for call units) of one unit, feature arrays as TemporalArrays
    (``arrays``: name -> (.npy path relative to the output, shape))."""
    custom = {name: {"array": {"storage_type": "numpy_files", "storage_path": ".", "storage_key": key,
                               "shape": shape},
                     "temporal_dim": 0, "frame_shift": frame_shift_s, "start": supervision["start"]}
              for name, (key, shape) in arrays.items()}
    multi = isinstance(supervision["channel"], list)
    return {"id": supervision["id"], "start": supervision["start"], "duration": supervision["duration"],
            "channel": supervision["channel"], "supervisions": [supervision], "recording": recording,
            **({"custom": custom} if custom else {}), "type": "MultiCut" if multi else "MonoCut"}


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def jsonl(lines: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()
