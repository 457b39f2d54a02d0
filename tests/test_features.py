"""Specifications of voicelake.analysis.features with the level gate, energy-v1: exact values on synthetic
calls, an oracle on real calls.  (The neural VAD, the default, is specified in tests/test_vad.py;
everything here that is not about the gate, the conversation structure built on the segments, holds
for both.)

Synthetic speech is a 2 kHz square wave (+A, +A, -A, -A at 8 kHz): its power is exactly A², so
every level below is exact.  All times are multiples of the 20 ms frame.

Real calls: ../shared/samples/audio (PROVENANCE.md).  The oracle is a second, deliberately plain
implementation of a 20 ms energy gate at -45 dBFS; with the VAD configured as that gate (fixed
threshold, no bridging, no blip dropping) the features must agree with it to within 1e-4, which is
only the rounding of ratios to 6 decimals.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.tables import rows_to_table
from tests.conftest import shared_path
from voicelake.analysis import features
from voicelake.analysis.features import CLIP_LEVEL, ENERGY_V1, VAD_METHOD, VadConfig
from voicelake.audio import Gap

RATE = 8000
T0 = 1_715_698_800_000
GATE = replace(ENERGY_V1, noise_margin_db=None, merge_gap_ms=0, min_speech_ms=0)


def analyse_call(*args, config=ENERGY_V1, **kwargs):
    return features.analyse_call(*args, config=config, **kwargs)


def speech(spans_ms: list[tuple[int, int]], total_ms: int, amplitude: int) -> np.ndarray:
    x = np.zeros(total_ms * RATE // 1000, dtype=np.int16)
    pattern = np.array([1, 1, -1, -1], dtype=np.int16) * amplitude
    for a, b in spans_ms:
        n = (b - a) * RATE // 1000
        x[a * RATE // 1000:b * RATE // 1000] = np.tile(pattern, n // 4)
    return x


def db(power: float) -> float:
    return round(10 * math.log10(power), 3)


CUSTOMER_SPANS = [(1000, 2000), (2100, 3000),  # a 100 ms pause: bridged into one segment
                  (10500, 13000), (14000, 16000),
                  (18000, 18060)]  # a 60 ms blip: dropped
AGENT_SPANS = [(2800, 5000),  # starts 200 ms before the customer ends: overlap, no interruption
               (11000, 12000),  # inside the customer's segment: backchannel and interruption
               (13000, 15000)]  # starts as the customer's segment ends: reply gap 0


@pytest.fixture(scope="module")
def scripted():
    customer = speech(CUSTOMER_SPANS, 20000, 16384)  # power 1/4: -6.021 dBFS
    agent = speech(AGENT_SPANS, 20000, 8192)  # power 1/16: -12.041 dBFS
    gaps = [[], [Gap(T0 - 100, T0 + 40), Gap(T0 + 6000, T0 + 6500)]]
    return analyse_call([customer, agent], RATE, ["customer", "agent"], start_ms=T0, gaps=gaps)


def test_scripted_call_segments(scripted):
    def seg(channel, role, i, a, b, rms):
        return {"channel": channel, "role": role, "segment": i, "start_ms": a, "end_ms": b,
                "duration_ms": b - a, "rms_dbfs": rms, "peak_dbfs": {0: -6.021, 1: -12.041}[channel],
                "phase": "call"}  # no CTR: the whole call is one phase
    assert scripted.segments == [
        seg(0, "customer", 0, 1000, 3000, db(0.25 * 1900 / 2000)),  # the bridged pause is silent
        seg(0, "customer", 1, 10500, 13000, -6.021),
        seg(0, "customer", 2, 14000, 16000, -6.021),
        seg(1, "agent", 0, 2800, 5000, -12.041),
        seg(1, "agent", 1, 11000, 12000, -12.041),
        seg(1, "agent", 2, 13000, 15000, -12.041),
    ]


def test_scripted_call_channels(scripted):
    customer, agent = scripted.channels
    assert customer == {
        "channel": 0, "role": "customer", "duration_ms": 20000,
        "talk_ms": 6500, "talk_share": 0.325,
        "silence_ratio": 1 - 0.323,  # raw gate: 6460 ms of frames above the threshold
        "non_speech_ms": None,  # the gate cannot tell sound from speech
        "segment_count": 3,
        "rms_dbfs_mean": db(0.25 * 6400 / 6500), "rms_dbfs_p95": -6.021, "peak_dbfs": -6.021,
        "noise_floor_dbfs": -120.0, "vad_threshold_dbfs": -45.0,
        "snr_db": round(db(0.25 * 6400 / 6500) + 120, 3),
        "longest_silence_ms": 7500,  # 3000-10500
        "clipped_ratio": 0.0, "clip_events": 0, "dc_offset": 0.0,
        "gap_ms": 0, "gap_count": 0,
        "turns": 3, "longest_turn_ms": 2500,
        "reply_gap_ms_p50": 2250,  # median of 10500-5000 and 14000-15000
        "interruptions": 1,  # 14000, inside the agent's 13000-15000
    }
    assert agent == {
        "channel": 1, "role": "agent", "duration_ms": 20000,
        "talk_ms": 5200, "talk_share": 0.26, "silence_ratio": 0.74, "non_speech_ms": None,
        "segment_count": 3,
        "rms_dbfs_mean": -12.041, "rms_dbfs_p95": -12.041, "peak_dbfs": -12.041,
        "noise_floor_dbfs": -120.0, "vad_threshold_dbfs": -45.0, "snr_db": 107.959,
        "longest_silence_ms": 6000,  # 5000-11000
        "clipped_ratio": 0.0, "clip_events": 0, "dc_offset": 0.0,
        "gap_ms": 540, "gap_count": 2,
        "turns": 2,  # the backchannel 11000-12000 takes no turn
        "longest_turn_ms": 2200,
        "reply_gap_ms_p50": -100,  # median of 2800-3000 and 13000-13000
        "interruptions": 1,  # 11000, inside the customer's 10500-13000
    }


def test_scripted_call_level(scripted):
    assert scripted.call == {
        "duration_ms": 20000, "channel_count": 2, "vad_method": "energy-v1",
        "talk_ms_customer": 6500, "talk_ms_agent": 5200,
        "overlap_ms": 2200,  # 2800-3000, 11000-12000, 14000-15000
        "overlap_ratio": 0.11,
        "non_talk_ms": 10500,  # 0-1000, 5000-10500, 16000-20000
        "non_talk_ratio": 0.525,
        "non_speech_ms": None,
        "long_silence_count": 1,  # only 5000-10500 is longer than 5 s
        "longest_silence_ms": 5500,
        "turns": 4,  # C A C A C
        "interruptions_customer": 1, "interruptions_agent": 1,
        "gap_ms": 540,
        # no CTR: one phase, the conversation is the whole call, holds are not looked for
        "conversation_start_ms": 0, "conversation_end_ms": 20000,
        "ivr_ms": None, "queue_ms": None, "agent_ms": None, "after_ms": None,
        "hold_ms": None, "hold_count": None,
    }
    assert scripted.phases == [{
        "phase": "call", "start_ms": 0, "end_ms": 20000, "duration_ms": 20000, "boundary": "audio",
        "talk_ms_customer": 6500, "talk_ms_agent": 5200,  # = the call's talk
        "non_speech_ms_customer": None, "non_speech_ms_agent": None}]
    assert scripted.gaps == [  # relative to sample 0, the head clipped to the call
        {"channel": 1, "role": "agent", "gap": 0, "start_ms": 0, "end_ms": 40, "duration_ms": 40},
        {"channel": 1, "role": "agent", "gap": 1, "start_ms": 6000, "end_ms": 6500,
         "duration_ms": 500},
    ]


def test_rows_fit_the_lake_tables(scripted):
    identity = {"call_id": "c-1", "source": "connect"}
    calls = rows_to_table("calls", [{**identity, "start_time": T0, "end_time": T0 + 20000,
                                     **scripted.call}])
    assert calls.column("overlap_ms").to_pylist() == [2200]
    for table, rows in (("channels", scripted.channels), ("segments", scripted.segments),
                        ("gaps", scripted.gaps)):
        assert rows_to_table(table, [{**identity, **r} for r in rows]).num_rows == len(rows)


def test_a_partial_last_frame_counts_its_own_length():
    x = speech([(200, 1000)], 1000, 16384)
    x = np.concatenate([x, x[-40:]])  # 1005 ms, speech from 200 ms to the end
    result = analyse_call([x], RATE, ["agent"])
    ch = result.channels[0]
    assert (ch["duration_ms"], ch["talk_ms"], ch["longest_silence_ms"]) == (1005, 805, 200)
    assert (result.segments[0]["start_ms"], result.segments[0]["end_ms"]) == (200, 1005)
    assert ch["turns"] == 1 and ch["reply_gap_ms_p50"] is None


def test_full_scale_square_wave_is_all_clipped():
    x = np.tile(np.array([32767, 32767, -32767, -32767], dtype=np.int16), 4000)
    ch = analyse_call([x], RATE, ["customer"]).channels[0]
    assert (ch["clipped_ratio"], ch["clip_events"], ch["peak_dbfs"]) == (1.0, 1, 0.0)
    # a signal loud throughout is its own noise floor: the adaptive threshold finds no speech
    assert (ch["noise_floor_dbfs"], ch["vad_threshold_dbfs"], ch["talk_ms"]) == (0.0, 12.0, 0)


def test_clipped_samples_and_clip_events():
    x = np.zeros(8000, dtype=np.int16)
    x[100:103] = 32767  # event
    x[200:202] = -32768  # 2 samples: clipped, no event
    x[300] = CLIP_LEVEL + 5  # single clipped sample
    x[400] = CLIP_LEVEL - 1  # below the level
    x[500:505] = -CLIP_LEVEL  # event
    ch = analyse_call([x], RATE, [None]).channels[0]
    assert (ch["clipped_ratio"], ch["clip_events"], ch["peak_dbfs"]) == (round(11 / 8000, 6), 2, 0.0)


def test_dc_offset_is_the_mean_as_a_fraction_of_full_scale():
    ch = analyse_call([np.full(800, 328, dtype=np.int16)], RATE, [None]).channels[0]
    assert ch["dc_offset"] == round(328 / 32768, 6)


def test_silence_is_floored_never_nan_or_inf():
    result = analyse_call([np.zeros(6 * RATE, dtype=np.int16)] * 2, RATE, ["customer", "agent"])
    ch = result.channels[0]
    assert (ch["peak_dbfs"], ch["noise_floor_dbfs"], ch["vad_threshold_dbfs"]) == (-120.0, -120.0, -45.0)
    assert (ch["rms_dbfs_mean"], ch["rms_dbfs_p95"], ch["snr_db"]) == (None, None, None)
    assert (ch["talk_ms"], ch["turns"], ch["longest_silence_ms"]) == (0, 0, 6000)
    assert result.call["non_talk_ratio"] == 1.0 and result.call["long_silence_count"] == 1
    assert result.call["turns"] == 0 and result.segments == []
    values = [v for row in (result.call, *result.channels) for v in row.values()]
    assert all(math.isfinite(v) for v in values if isinstance(v, float))


def test_roles_decide_the_per_role_columns():
    x = speech([(0, 500)], 1000, 16384)
    both_customer = analyse_call([x, x], RATE, ["customer", "customer"]).call
    assert both_customer["talk_ms_customer"] is None and both_customer["talk_ms_agent"] is None
    # identical segments on both channels: neither is the other's backchannel
    assert both_customer["turns"] == 1


def test_changed_parameters_are_named_in_the_method():
    assert ENERGY_V1.method == VAD_METHOD == "energy-v1"
    assert GATE.method == "energy-v1(noise_margin_db=None,merge_gap_ms=0,min_speech_ms=0)"
    assert VadConfig().method == "silero-v5(threshold=0.5,background_db=15.0)"
    assert VadConfig(threshold=0.6, skip_margin_db=None).method == \
        "silero-v5(threshold=0.6,background_db=15.0,skip_margin_db=None)"
    with pytest.raises(ValueError, match="unknown VAD model"):
        VadConfig(model="webrtc")


def test_bad_input_is_refused():
    x = np.zeros(800, dtype=np.int16)
    with pytest.raises(ValueError, match="roles"):
        analyse_call([x, x], RATE, ["agent"])
    with pytest.raises(ValueError, match="gaps for 1"):
        analyse_call([x, x], RATE, ["customer", "agent"], gaps=[[]])
    with pytest.raises(ValueError, match="int16"):
        analyse_call([x.astype(np.float32)], RATE, ["agent"])
    with pytest.raises(ValueError, match="equal length"):
        analyse_call([x, x[:400]], RATE, ["customer", "agent"])
    with pytest.raises(ValueError, match="equal length"):
        analyse_call([x[:0]], RATE, ["agent"])


def conversation_oracle(spans: list[list[tuple[int, int]]], lead: int = 300, hold: int = 300):
    """Turn-taking by the documented definitions, in plain Python over (start, end) lists."""
    def inside_other(c, seg):
        return any(a <= seg[0] and seg[1] <= b and (a, b) != seg
                   for o, other in enumerate(spans) if o != c for a, b in other)
    floor = sorted((seg[0], c, seg[1]) for c, segs in enumerate(spans) for seg in segs
                   if not inside_other(c, seg))
    turns = []  # [channel, start, end]
    for start, c, end in floor:
        if turns and turns[-1][0] == c:
            turns[-1][2] = max(turns[-1][2], end)
        else:
            turns.append([c, start, end])
    interruptions = [sum(1 for onset, _ in segs
                         for o, other in enumerate(spans) if o != c
                         for a, b in other if a <= onset - lead and onset + hold <= b)
                     for c, segs in enumerate(spans)]
    replies = [[t[1] - prev[2] for prev, t in zip(turns, turns[1:], strict=False) if t[0] == c]
               for c in range(len(spans))]
    return turns, interruptions, replies


def frame_spans(draw_parts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(pause, length) pairs in 20 ms frames -> (start_ms, end_ms) spans."""
    spans, t = [], 0
    for pause, length in draw_parts:
        spans.append(((t + pause) * 20, (t + pause + length) * 20))
        t += pause + length
    return spans


channel_parts = st.lists(st.tuples(st.integers(10, 60), st.integers(5, 50)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(customer_parts=channel_parts, agent_parts=channel_parts)
def test_random_conversations_match_the_plain_definitions(customer_parts, agent_parts):
    # pauses >= 200 ms and runs >= 100 ms survive the VAD unchanged, so segments == spans
    spans = [frame_spans(customer_parts), frame_spans(agent_parts)]
    total_ms = max([b for s in spans for _, b in s] + [1000])
    x = [speech(s, total_ms, amp) for s, amp in zip(spans, (16384, 8192), strict=True)]
    result = analyse_call(x, RATE, ["customer", "agent"])
    for c, ch_spans in enumerate(spans):
        assert [(s["start_ms"], s["end_ms"]) for s in result.segments if s["channel"] == c] == ch_spans

    timeline = np.zeros((2, total_ms), dtype=bool)  # one cell per ms
    for c, ch_spans in enumerate(spans):
        for a, b in ch_spans:
            timeline[c, a:b] = True
    call = result.call
    assert call["overlap_ms"] == int((timeline[0] & timeline[1]).sum())
    assert call["non_talk_ms"] == int((~timeline[0] & ~timeline[1]).sum())
    assert [call["talk_ms_customer"], call["talk_ms_agent"]] == timeline.sum(axis=1).tolist()

    turns, interruptions, replies = conversation_oracle(spans)
    assert call["turns"] == max(len(turns) - 1, 0)
    assert [call["interruptions_customer"], call["interruptions_agent"]] == interruptions
    for c, ch in enumerate(result.channels):
        mine = [t for t in turns if t[0] == c]
        assert ch["turns"] == len(mine)
        assert ch["longest_turn_ms"] == max([t[2] - t[1] for t in mine], default=0)
        assert ch["reply_gap_ms_p50"] == (int(np.round(np.median(replies[c]))) if replies[c] else None)


# ---- real calls ---------------------------------------------------------------------------------

# PROVENANCE.md: a 20 ms energy gate at -45 dBFS, percent of the call
PUBLISHED = {"40": {"agent": 35, "caller": 34, "both": 0.3, "neither": 32},
             "49": {"agent": 51, "caller": 38, "both": 8.4, "neither": 20}}


def load_call(number: str) -> tuple[np.ndarray, np.ndarray]:
    """(customer, agent) int16 channels of a sample call."""
    sides = []
    for side in ("caller", "agent"):
        x, rate = sf.read(shared_path("samples", "audio", f"Auto_Repairs_{number}_UTC_{side}.wav"),
                          dtype="int16")
        assert rate == RATE
        sides.append(x)
    return sides[0], sides[1]


def oracle_gate(x: np.ndarray) -> np.ndarray:
    """Active 20 ms frames: mean-square level above -45 dBFS (float64, no librosa, no smoothing)."""
    frames = x[:len(x) // 160 * 160].reshape(-1, 160).astype(np.float64) / 32768
    return 10 * np.log10(np.maximum((frames ** 2).mean(axis=1), 1e-12)) > -45


@pytest.fixture(scope="module", params=["40", "49"])
def real_call(request):
    customer, agent = load_call(request.param)
    return request.param, customer, agent


def test_oracle_gate_reproduces_the_published_shares(real_call):
    number, customer, agent = real_call
    a, c = oracle_gate(agent), oracle_gate(customer)
    shares = {"agent": a.mean(), "caller": c.mean(), "both": (a & c).mean(), "neither": (~a & ~c).mean()}
    published = PUBLISHED[number]
    for key, value in shares.items():
        tolerance = 0.05 if key == "both" else 0.5  # published to 1 decimal / whole percent
        assert 100 * value == pytest.approx(published[key], abs=tolerance), key


def test_gate_configured_features_agree_with_the_oracle(real_call):
    _, customer, agent = real_call
    result = analyse_call([customer, agent], RATE, ["customer", "agent"], config=GATE)
    a, c = oracle_gate(agent), oracle_gate(customer)
    ch_customer, ch_agent = result.channels
    assert ch_customer["talk_share"] == pytest.approx(c.mean(), abs=1e-4)
    assert ch_agent["talk_share"] == pytest.approx(a.mean(), abs=1e-4)
    assert result.call["overlap_ratio"] == pytest.approx((a & c).mean(), abs=1e-4)
    assert result.call["non_talk_ratio"] == pytest.approx((~a & ~c).mean(), abs=1e-4)


def test_default_features_on_real_calls(real_call):
    number, customer, agent = real_call
    result = analyse_call([customer, agent], RATE, ["customer", "agent"])
    call, channels, segments = result.call, result.channels, result.segments
    for ch, x in zip(channels, (customer, agent), strict=True):
        gate = oracle_gate(x)
        # both channels are quiet enough between words that the -45 dBFS floor is the threshold
        assert ch["vad_threshold_dbfs"] == -45.0 and ch["noise_floor_dbfs"] < -57
        assert ch["silence_ratio"] == pytest.approx(1 - gate.mean(), abs=1e-4)
        # bridging pauses < 200 ms adds talk; dropping blips < 100 ms removes a little
        assert 0 <= ch["talk_share"] - gate.mean() <= 0.06
        mine = [s for s in segments if s["channel"] == ch["channel"]]
        assert ch["talk_ms"] == sum(s["duration_ms"] for s in mine)
        assert all(s["duration_ms"] >= 100 for s in mine)
        assert all(b["start_ms"] - a["end_ms"] >= 200 for a, b in zip(mine, mine[1:], strict=False))
        clipped = np.count_nonzero(np.abs(x.astype(np.int32)) >= CLIP_LEVEL)
        assert ch["clipped_ratio"] == round(clipped / len(x), 6)
        assert 30 < ch["snr_db"] < 100 and -25 < ch["rms_dbfs_mean"] < -10
    assert (call["talk_ms_customer"] + call["talk_ms_agent"] - call["overlap_ms"]
            + call["non_talk_ms"]) == call["duration_ms"]
    assert sum(ch["turns"] for ch in channels) == call["turns"] + 1
    assert call["long_silence_count"] == 0 and call["gap_ms"] == 0
    if number == "40":  # polite turn-taking
        assert call["overlap_ratio"] < 0.005 and call["turns"] >= 20
    else:  # real cross-talk
        assert 0.05 < call["overlap_ratio"] < 0.12
        assert call["interruptions_customer"] > 5 and call["interruptions_agent"] > 5
