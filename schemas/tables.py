"""Every lake table's columns, in one place: the Parquet writer, the Athena DDL and the docs read them.

Files live at ``<root>/<table>/date=YYYY-MM-DD/voice_connector_id=<id>/part-*.parquet``; the two
partition columns are carried by the folders only, never stored in the files (shared/domain/beam.md
§4).  Only Athena-safe Arrow types are used: ``timestamp('ms', tz='UTC')``, int32, int64, float32,
float64, string, bool, and lists / structs of them; ``lint_schema`` enforces it.

Every field carries its description in its metadata (``b"description"``).  Descriptions become DDL
COMMENTs, so they stay within the Glue limit of 255 characters and contain no quote or backslash.
Rows are deterministic: no wall-clock column anywhere, so a re-run writes the same bytes.
"""
from __future__ import annotations

import pyarrow as pa

DESCRIPTION = b"description"
MAX_COMMENT = 255  # Glue Column.Comment limit
TIMESTAMP = pa.timestamp("ms", tz="UTC")

# Arrow type -> Athena DDL type: the allow-list of scalar types (lists and structs of them are fine).
ATHENA_SCALARS = {
    pa.bool_(): "boolean",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.float32(): "float",
    pa.float64(): "double",
    pa.string(): "string",
    TIMESTAMP: "timestamp",
}

PARTITION_COLUMNS = (
    ("date", "UTC day of the call (for failures: of the record), YYYY-MM-DD, from the folder "
             "date=... A reserved word: quote it as \"date\" in Athena, Trino and DuckDB, as "
             "`date` in Spark SQL and Hive."),
    ("voice_connector_id", "Chime Voice Connector ID, or the Amazon Connect instance ID for "
                           "Connect calls, from the folder voice_connector_id=... (unknown for "
                           "failures without one)."),
)


def athena_type(t: pa.DataType) -> str:
    """The Athena DDL type of an Arrow type; TypeError if it is not on the allow-list."""
    if t in ATHENA_SCALARS:
        return ATHENA_SCALARS[t]
    if pa.types.is_list(t):
        return f"array<{athena_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{athena_type(f.type)}" for f in t) + ">"
    raise TypeError(f"{t} is not an Athena-safe type")


def col(name: str, type_: pa.DataType, description: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={DESCRIPTION: description.encode()})


def table(description: str, *fields: pa.Field) -> pa.Schema:
    return pa.schema(fields, metadata={DESCRIPTION: description.encode()})


def description(item: pa.Field | pa.Schema) -> str:
    return (item.metadata or {}).get(DESCRIPTION, b"").decode()


def _identity() -> list[pa.Field]:
    return [
        col("call_id", pa.string(), "Amazon Connect ContactId or Chime Voice Connector "
                                    "TransactionId of the call.", nullable=False),
        col("source", pa.string(), "connect or chime: the record type the call came from, and so "
                                   "what call_id is.", nullable=False),
    ]


def _channel_identity() -> list[pa.Field]:
    return _identity() + [
        col("channel", pa.int32(), "Channel number, 0-based: the column of the call WAV.",
            nullable=False),
        col("role", pa.string(), "customer or agent; null when the records do not say."),
    ]


def _span(what: str) -> list[pa.Field]:
    return [
        col("start_ms", pa.int64(), f"Start of the {what}, ms after the call start_time (sample 0 "
                                    "of the WAV).", nullable=False),
        col("end_ms", pa.int64(), f"End of the {what} (exclusive), ms after the call start_time.",
            nullable=False),
        col("duration_ms", pa.int64(), "end_ms - start_ms.", nullable=False),
    ]


CALLS = table(
    "One row per call: identity, provenance of its audio and call-level conversation metrics. "
    "Metrics come from the audio alone (no transcript), see vad_method.",
    *_identity(),
    col("start_time", TIMESTAMP, "Start of the call window (UTC, ms) and time of sample 0 of the "
                                 "WAV; every *_ms offset in channels, segments and gaps counts "
                                 "from here.", nullable=False),
    col("end_time", TIMESTAMP, "End of the call window (UTC, ms, exclusive).", nullable=False),
    col("duration_ms", pa.int64(), "Length of the call audio in ms."),
    col("channel_count", pa.int32(), "Number of audio channels (2 for a two-party call)."),
    col("channel_map", pa.string(), "Role of every channel by number, e.g. 0=customer,1=agent; "
                                    "the same order as the WAV channels."),
    col("sample_rate", pa.int32(), "Sample rate of the source audio in Hz (8000 for KVS "
                                   "telephony); features are measured at this rate."),
    col("target_sample_rate", pa.int32(), "Sample rate of the ML WAV in Hz."),
    col("wav_path", pa.string(), "Full URI of the ML WAV of the call (s3://... under the lake root, "
                                 "or an absolute path for a local lake): 16-bit PCM, one channel per "
                                 "channel number, DC removed, source peak at -1 dBFS per channel; "
                                 "null if none was written."),
    col("source_key", pa.string(), "Object key of the call record (Chime SDR or Connect CTR) the "
                                   "call came from."),
    col("fragments", pa.int32(), "KVS fragments whose audio went into the call."),
    col("missing_fragments", pa.int32(), "Fragments of the call that could not be read (not found, "
                                         "expired, error chunk); their time shows up as gaps."),
    col("partial", pa.bool_(), "True when part of the call window has no audio: missing "
                               "fragments, truncated media or gaps."),
    col("bytes_fetched", pa.int64(), "Media bytes of the KVS fragments read for this call, each whole fragment once "
        "(bytes re-read by retries are not counted, so re-runs agree)."),
    col("vad_method", pa.string(), "Voice-activity method behind every talk, silence and turn "
                                   "column: silero-v5(threshold=0.5,background_db=15.0), the "
                                   "Silero VAD v5 neural model (default), or energy-v1, the level "
                                   "gate (--vad energy); changed parameters are appended."),
    col("talk_ms_customer", pa.int64(), "Speech time of the customer channel in the conversation "
                                        "(holds excluded), ms. Null without a conversation, or "
                                        "unless exactly one channel is the customer."),
    col("talk_ms_agent", pa.int64(), "Speech time of the agent channel in the conversation (holds, "
                                     "IVR prompts and queue announcements excluded), ms. Null "
                                     "without a conversation, or unless exactly one channel is the agent."),
    col("overlap_ms", pa.int64(), "Time in ms of the conversation during which two or more "
                                  "channels are in speech at once (cross-talk)."),
    col("overlap_ratio", pa.float64(), "overlap_ms / the conversation duration "
                                       "(conversation_end_ms - conversation_start_ms)."),
    col("non_talk_ms", pa.int64(), "Time in ms of the conversation during which no channel is in "
                                   "speech, every hold counted whole (non-talk time, as Contact "
                                   "Lens counts hold), its edges included."),
    col("non_talk_ratio", pa.float64(), "non_talk_ms / the conversation duration."),
    col("non_speech_ms", pa.int64(), "channels.non_speech_ms summed over the channels: sound the "
                                     "VAD rejects (hold music, prompts, noise); null for "
                                     "energy-v1, which cannot tell it from speech."),
    col("long_silence_count", pa.int32(), "Stretches of the conversation of more than 5 s with no "
                                          "channel in speech (as Google CCAI counts silences), "
                                          "edges and holds included."),
    col("longest_silence_ms", pa.int64(), "Longest stretch of the conversation with no channel in "
                                          "speech, in ms."),
    col("turns", pa.int32(), "Speaker changes in the conversation: its turns minus one (see "
                             "channels.turns)."),
    col("interruptions_customer", pa.int32(), "channels.interruptions of the customer channel; "
                                              "null unless exactly one channel is the customer."),
    col("interruptions_agent", pa.int32(), "channels.interruptions of the agent channel; null "
                                           "unless exactly one channel is the agent."),
    col("gap_ms", pa.int64(), "Silence-filled holes in the audio summed over all channels, in ms "
                              "(one row each in gaps)."),
    col("conversation_start_ms", pa.int64(), "Start of the conversation (the agent phase, or the "
        "whole of a one-phase call), ms after start_time, every talk, overlap, non-talk, silence, "
        "turn and interruption column is measured over it. Null: no agent."),
    col("conversation_end_ms", pa.int64(), "End of the conversation (exclusive), ms after "
                                           "start_time, null when the contact reached no agent."),
    *(col(f"{phase}_ms", pa.int64(), f"Audio of the {phase} phase the stream holds, in ms (0 when "
          "it holds none), null for a one-phase call (Chime, or no CTR phase marks). See phases.")
      for phase in ("ivr", "queue", "agent", "after")),
    col("hold_ms", pa.int64(), "Time on hold inside the conversation found in the audio (music or "
                               "silence to the caller, no agent speech), in ms, the CTR total when "
                               "the audio cannot tell, null when not looked for."),
    col("hold_count", pa.int32(), "Holds found inside the conversation (one row each in phases, "
                                  "when the audio places them), null when not looked for."),
    col("hold_ms_ctr", pa.int64(), "The CTR Agent.CustomerHoldDuration x 1000 (whole seconds), "
                                   "null when the CTR has none."),
    col("hold_count_ctr", pa.int32(), "The CTR Agent.NumberOfHolds, null when the CTR has none."),
    col("agent_username", pa.string(), "Connect: the CTR Agent.Username (an employee: personal "
                                       "data), null when no agent took the contact."),
    col("queue_name", pa.string(), "Connect: the CTR Queue.Name, null when the contact never "
                                   "queued."),
    col("routing_profile", pa.string(), "Connect: the agent routing profile name "
                                        "(Agent.RoutingProfile.Name)."),
    col("initiation_method", pa.string(), "Connect: InitiationMethod (INBOUND, OUTBOUND, "
                                          "TRANSFER, CALLBACK, API, ...)."),
    col("disconnect_reason", pa.string(), "Connect: DisconnectReason, e.g. CUSTOMER_DISCONNECT."),
    col("initial_contact_id", pa.string(), "Connect: InitialContactId, the first contact of a "
                                           "chain of transfers, null for the first."),
    col("previous_contact_id", pa.string(), "Connect: PreviousContactId, the contact this one was "
                                            "transferred from, null for the first."),
    col("direction", pa.string(), "Chime: the streaming events direction (Inbound or Outbound), "
                                  "null for Connect (see initiation_method)."),
)

CHANNELS = table(
    "One row per channel of a call: speech, turn-taking, level and signal-quality features, "
    "measured on the source samples (not the normalised WAV).",
    *_channel_identity(),
    col("stream_arn", pa.string(), "KVS stream the audio of the channel came from."),
    col("duration_ms", pa.int64(), "Length of the channel in ms (equal for all channels of a "
                                   "call)."),
    col("talk_ms", pa.int64(), "Speech time of the channel in the conversation (holds excluded), "
                               "ms; null without a conversation."),
    col("talk_share", pa.float64(), "talk_ms / the conversation duration (the talk-time "
                                    "percentage of Contact Lens, as a fraction)."),
    col("silence_ratio", pa.float64(), "Fraction of the channel in 20 ms frames the VAD scores "
                                       "below its threshold (speech probability, or frame level "
                                       "for energy-v1), before pauses are bridged and blips "
                                       "dropped."),
    col("non_speech_ms", pa.int64(), "Sound that is not speech, in ms: frames of the level gate "
                                     "segments (above vad_threshold_dbfs) farther than 200 ms "
                                     "from any speech segment, e.g. hold music, prompts, noise, "
                                     "null for energy-v1."),
    col("segment_count", pa.int32(), "Number of speech segments (rows in segments)."),
    col("rms_dbfs_mean", pa.float64(), "Speech level: mean power over the speech of the channel, "
                                       "dBFS (0 = full-scale square wave), null without speech."),
    col("rms_dbfs_p95", pa.float64(), "95th percentile of the 20 ms frame levels within speech, "
                                      "dBFS, null without speech."),
    col("peak_dbfs", pa.float64(), "Largest absolute sample, dBFS, -120 means digital silence."),
    col("noise_floor_dbfs", pa.float64(), "Noise estimate: 10th percentile of the 20 ms frame "
                                          "levels, dBFS (-120 = digital silence)."),
    col("vad_threshold_dbfs", pa.float64(), "Level gate: max(-45, noise_floor_dbfs + 12) dBFS. "
                                            "energy-v1 counts frames above it as speech, with "
                                            "the neural VAD, rejected frames above it are "
                                            "non_speech_ms."),
    col("snr_db", pa.float64(), "Signal-to-noise estimate: rms_dbfs_mean - noise_floor_dbfs, dB, "
                                "null without speech."),
    col("longest_silence_ms", pa.int64(), "Longest stretch of the conversation without speech on "
                                          "this channel, in ms, edges included."),
    col("clipped_ratio", pa.float64(), "Fraction of samples with an absolute value of at least "
                                       "32735 (99.9 % of full scale)."),
    col("clip_events", pa.int32(), "Runs of 3 or more consecutive clipped samples (flat tops)."),
    col("dc_offset", pa.float64(), "Mean sample value as a fraction of full scale."),
    col("gap_ms", pa.int64(), "Silence-filled holes in this channel, in ms."),
    col("gap_count", pa.int32(), "Number of silence-filled holes (rows in gaps)."),
    col("turns", pa.int32(), "Turns taken in the conversation: runs of this channel in the "
                             "time-ordered segments of all channels. A segment wholly inside "
                             "one of another channel is a backchannel and takes no turn."),
    col("longest_turn_ms", pa.int64(), "Longest turn (monologue), from its first segment start to "
                                       "its last segment end, in ms."),
    col("reply_gap_ms_p50", pa.int64(), "Median ms from the end of the previous turn of another "
                                        "channel to the start of a turn of this one (negative: "
                                        "started before the other ended), null if none."),
    col("interruptions", pa.int32(), "Segment starts of this channel while another channel had "
                                     "been in one segment for at least 300 ms and stayed in it "
                                     "at least 300 ms more (backchannels count)."),
)

SEGMENTS = table(
    "One row per speech segment of a channel (vad_method of the call), for analytics and for "
    "cutting the ML WAV: one supervision per channel and segment.",
    *_channel_identity(),
    col("segment", pa.int32(), "0-based index of the segment within its channel, in time order.",
        nullable=False),
    *_span("segment"),
    col("rms_dbfs", pa.float64(), "Mean power of the segment, dBFS."),
    col("peak_dbfs", pa.float64(), "Largest absolute sample in the segment, dBFS."),
    col("phase", pa.string(), "Phase the middle of the segment lies in: ivr, queue, agent, after, "
                              "call, or hold (inside agent). Conversation metrics count only "
                              "agent and call segments."),
)

PHASES = table(
    "One row per phase of a call (ivr, queue, agent, after for Connect, call for a one-phase "
    "call) and per hold inside agent, with the talk of each side and non-speech sound within it.",
    *_identity(),
    col("phase", pa.string(), "ivr, queue, agent, after, call or hold (a hold lies inside the "
                              "agent phase, which also counts its time).", nullable=False),
    *_span("phase"),
    col("boundary", pa.string(), "What placed the interval: ctr (the CTR marks, whole seconds), "
                                 "audio (found in the audio alone) or ctr+audio (a CTR mark moved "
                                 "by the audio, or a hold found in the audio and checked against "
                                 "the CTR totals)."),
    col("talk_ms_customer", pa.int64(), "Speech of the customer channel within the interval, ms."),
    col("talk_ms_agent", pa.int64(), "Speech of the agent channel (prompts, announcements and "
                                     "agent alike) within the interval, ms."),
    col("non_speech_ms_customer", pa.int64(), "Sound the VAD rejects on the customer channel "
                                              "within the interval, ms (null for energy-v1)."),
    col("non_speech_ms_agent", pa.int64(), "Sound the VAD rejects on the agent channel (music, "
                                           "tones) within the interval, ms (null for energy-v1)."),
)

GAPS = table(
    "One row per hole (longer than 1 ms) in the audio of a channel: missing fragments or lost "
    "media, present in the WAV as digital silence.",
    *_channel_identity(),
    col("gap", pa.int32(), "0-based index of the gap within its channel, in time order.",
        nullable=False),
    *_span("gap"),
)

FAILURES = table(
    "One row per record, call or fragment range that could not be turned into output, and why.",
    col("stage", pa.string(), "Pipeline stage that gave up: records, fragments, media, audio or "
                              "write.", nullable=False),
    col("reason", pa.string(), "Short machine-readable reason code, e.g. bad_json or "
                               "fragment_not_found.", nullable=False),
    col("detail", pa.string(), "Human-readable message.", nullable=False),
    col("source", pa.string(), "connect or chime, when known."),
    col("call_id", pa.string(), "ContactId or TransactionId, when known."),
    col("source_key", pa.string(), "Object key of the input record, when known."),
    col("source_offset", pa.int64(), "Byte offset of the record inside that object, when known."),
    col("kept", pa.bool_(), "True when the call failed this run (or its record was not read: "
                            "not_in_records) and keeps the rows and WAVs an earlier run landed."),
)

TABLES: dict[str, pa.Schema] = {
    "calls": CALLS,
    "channels": CHANNELS,
    "segments": SEGMENTS,
    "gaps": GAPS,
    "phases": PHASES,
    "failures": FAILURES,
}


def _problems(field: pa.Field, path: str) -> list[str]:
    problems = []
    try:
        athena_type(field.type)
    except TypeError:
        problems.append(f"{path}: type {field.type} is not Athena-safe")
    for child in (field.type if pa.types.is_struct(field.type) else ()):
        problems += _problems(child, f"{path}.{child.name}")
    return problems


def lint_schema(schema: pa.Schema) -> None:
    """Raise ValueError listing every field with a type off the allow-list, a missing or
    DDL-unsafe description, or a partition column's name."""
    partitions = {name for name, _ in PARTITION_COLUMNS}
    problems = []
    for f in schema:
        problems += _problems(f, f.name)
        text = description(f)
        if not text:
            problems.append(f"{f.name}: no description")
        elif len(text) > MAX_COMMENT or "'" in text or "\\" in text:
            problems.append(f"{f.name}: description longer than {MAX_COMMENT} characters or "
                            "containing a quote or backslash")
        if f.name in partitions:
            problems.append(f"{f.name}: partition column; the folder carries it, not the file")
    if problems:
        raise ValueError("schema not Athena-safe:\n  " + "\n  ".join(problems))


def rows_to_table(table_name: str, rows: list[dict]) -> pa.Table:
    """A table of ``rows`` in schema order; missing optional columns become null.

    Unknown keys and missing required values are errors, so a typo never silently drops a value.
    Timestamps may be given as epoch ms or as timezone-aware datetimes.
    """
    schema = TABLES[table_name]
    names = set(schema.names)
    required = [f.name for f in schema if not f.nullable]
    for i, row in enumerate(rows):
        extra = sorted(set(row) - names)
        if extra:
            raise ValueError(f"{table_name} row {i}: unknown columns {extra}"
                             + (" (partition columns go in the folder path)"
                                if set(extra) & {n for n, _ in PARTITION_COLUMNS} else ""))
        missing = [name for name in required if row.get(name) is None]
        if missing:
            raise ValueError(f"{table_name} row {i}: required columns missing {missing}")
    return pa.Table.from_pydict({f.name: [row.get(f.name) for row in rows] for f in schema},
                                schema=schema)


def describe_markdown() -> str:
    """A markdown section documenting every table and column (the generated block of docs/tables.md)."""
    lines = [
        "## Tables",
        "",
        "Parquet under `<root>/<table>/date=YYYY-MM-DD/voice_connector_id=<id>/`; the partition "
        "columns come from the folder names and are listed last. Types are Athena types.",
    ]
    for name, schema in TABLES.items():
        lines += ["", f"### `{name}`", "", description(schema), "",
                  "| column | type | description |", "|---|---|---|"]
        lines += [f"| `{f.name}` | {athena_type(f.type)}{'' if f.nullable else ', not null'} | "
                  f"{description(f)} |" for f in schema]
        lines += [f"| `{n}` | string, partition | {text} |" for n, text in PARTITION_COLUMNS]
    return "\n".join(lines) + "\n"
