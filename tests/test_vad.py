"""Specifications of the default voice activity, Silero VAD v5 (voicelake.analysis.vad, through features).

The truth here never comes from the model under test: speech is placed from the committed speech
clips at known sample offsets, and the hard conditions (noise, music, knocks) are added to it, so a
condition is scored against where the clips are, or against the same VAD's answer on the clean call.
``benchmarks/vad.py`` measures the same on the real calls and more conditions.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from runners.local import sounds
from runners.local.conversation import load_clips, placed_turns
from voicelake.analysis import features, vad
from voicelake.analysis.features import ENERGY_V1, VadConfig

RATE = 8000
FRAME = 160



def placed_call(pause_s: float = 1.2, turns: int = 10, seed: int = 0):
    return placed_turns(load_clips(), np.random.default_rng(seed), turns=turns, pause_s=pause_s)




def analyse(channels, config=VadConfig()):
    return features.analyse_call(channels, RATE, ["customer", "agent"][:len(channels)], config=config)


# ---- the model -------------------------------------------------------------------------------

def test_the_model_is_the_pinned_file_from_the_wheel(tmp_path, monkeypatch):
    import hashlib

    assert hashlib.sha256(vad.model_path().read_bytes()).hexdigest() == vad.MODEL_SHA256
    other = tmp_path / "silero_vad.onnx"
    other.write_bytes(b"not the model")
    monkeypatch.setattr(vad, "model_path", lambda: other)
    monkeypatch.setattr(vad, "_models", {})
    with pytest.raises(RuntimeError, match="not the pinned silero-v5 model"):
        vad.session()


@pytest.mark.parametrize("rate", [8000, 16000])
def test_the_batched_graph_answers_as_the_shipped_one(rate):
    """The convolutions rewritten as batched MatMuls (voicelake.analysis.vad_graph) are the same arithmetic:
    the probabilities agree to float rounding and every speech decision is the same."""
    (customer, agent), _ = placed_call(turns=4)
    x = np.repeat(customer, rate // RATE) if rate != RATE else customer
    answers = []
    for model in (vad.session(rate, shipped=True), vad.session(rate)):
        detector = vad.CallVad(rate, [-np.inf], len(x), model=model)
        detector.add([x])
        answers.append(detector.finish()[0])
    shipped, batched = answers
    assert np.abs(shipped - batched).max() < 1e-4
    assert np.array_equal(vad.hysteresis(shipped, 0.5, 0.35), vad.hysteresis(batched, 0.5, 0.35))


def test_a_worker_runs_the_model_on_its_own_thread():
    vad.session()
    before = len(os.listdir("/proc/self/task"))
    probe = vad.CallVad(RATE, [-np.inf], 4 * RATE)
    probe.add([np.random.default_rng(1).integers(-4000, 4000, 4 * RATE).astype(np.int16)])
    probe.finish()
    assert len(os.listdir("/proc/self/task")) == before


def test_other_sample_rates_are_refused_by_name():
    with pytest.raises(vad.UnsupportedRate, match="8000 or 16000 Hz audio, not 11025 Hz"):
        vad.CallVad(11025, [-np.inf], 11025)


# ---- determinism: a call's answer depends on its own samples only --------------------------------

def test_answers_do_not_depend_on_chunking_batching_or_the_other_channels():
    (customer, agent), _ = placed_call(turns=6)
    gates = [vad.skip_gate_dbfs(features.channel_signal(x, RATE).frames.level_db, 3.0)
             for x in (customer, agent)]
    whole = vad.CallVad(RATE, gates, len(customer))
    whole.add([customer, agent])
    expected = whole.finish()

    alone = vad.CallVad(RATE, gates[:1], len(customer), batch=1)
    for at in range(0, len(customer), 7919):  # odd chunks: windows and spans straddle them
        alone.add([customer[at:at + 7919]])
    assert np.array_equal(alone.finish()[0], expected[0])

    beside_noise = vad.CallVad(RATE, [gates[1], -np.inf], len(agent), batch=5)
    other = np.random.default_rng(7).integers(-9000, 9000, len(agent)).astype(np.int16)
    for at in range(0, len(agent), RATE * 30):
        beside_noise.add([agent[at:at + RATE * 30], other[at:at + RATE * 30]])
    assert np.array_equal(beside_noise.finish()[0], expected[1])


# ---- skipping --------------------------------------------------------------------------------

def test_digital_silence_and_the_noise_floor_are_never_run():
    (customer, _), spans = placed_call(pause_s=6.0, turns=4)
    silent = np.zeros(len(customer), np.int16)
    gate = vad.skip_gate_dbfs(features.channel_signal(customer, RATE).frames.level_db, 3.0)
    detector = vad.CallVad(RATE, [gate, vad.skip_gate_dbfs(np.full(10, -120.0), 3.0)], len(customer))
    detector.add([customer, silent])
    probs = detector.finish()
    assert not probs[1].any()
    windows = len(probs[0])
    speech = sounds.frames_of(spans[0], len(customer))
    # run: the speech, its onsets and tails, warm-ups; not the 6 s pauses of line noise
    assert detector.windows_run < 0.75 * windows
    assert detector.windows_run > speech.mean() * windows
    everything = vad.CallVad(RATE, [-np.inf], len(customer))
    everything.add([customer])
    everything.finish()
    spans = -(-windows // vad.SPAN)  # each but the first starts with its warm-up
    assert everything.windows_run == windows + (spans - 1) * vad.WARMUP


def test_hysteresis_starts_at_the_threshold_and_ends_below_the_release():
    p = np.array([0.1, 0.6, 0.4, 0.4, 0.3, 0.45, 0.5, 0.2])
    assert vad.hysteresis(p, 0.5, 0.35).tolist() == [False, True, True, True, False, False, True, False]


# ---- what the columns claim ------------------------------------------------------------------

def test_speech_is_found_where_the_clips_are():
    channels, spans = placed_call()
    result = analyse(channels)
    assert result.call["vad_method"] == "silero-v5(threshold=0.5,background_db=15.0)"
    for c in range(2):
        truth = sounds.frames_of(spans[c], len(channels[c]))
        found = sounds.segment_frames(result.segments, c, len(channels[c]))
        assert sounds.frame_f1(found, truth) >= 0.9
        assert result.channels[c]["talk_ms"] == pytest.approx(truth.sum() * 20, rel=0.15)
        assert result.channels[c]["non_speech_ms"] < 500  # words have no non-speech around them


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_noise_at_10_db_snr_keeps_the_talk_of_the_clean_call(kind):
    channels, spans = placed_call(seed=3)
    clean = analyse(channels)
    rng = np.random.default_rng(11)
    noisy_channels = [sounds.add_noise(x, sounds.frames_of(s, len(x)), kind, 10.0, rng)
                      for x, s in zip(channels, spans, strict=True)]
    noisy = analyse(noisy_channels)
    gate = analyse(noisy_channels, ENERGY_V1)
    for c in range(2):
        reference = sounds.segment_frames(clean.segments, c, len(channels[c]))
        assert sounds.frame_f1(sounds.segment_frames(noisy.segments, c, len(channels[c])), reference) >= 0.85
        talk = clean.channels[c]["talk_ms"]
        assert noisy.channels[c]["talk_ms"] == pytest.approx(talk, rel=0.15)
        # the level gate's floating threshold: noise lifts it over much of the speech
        assert abs(gate.channels[c]["talk_ms"] - talk) > 0.15 * talk


def test_hold_music_is_non_speech_not_talk():
    (customer, agent), _ = placed_call(turns=4)
    at, music = len(agent) // 2, sounds.hold_music(30.0, np.random.default_rng(5))
    agent = np.concatenate((agent[:at], music, agent[at:]))
    customer = np.concatenate((customer[:at], np.zeros(len(music), np.int16) + customer[:1],
                               customer[at:]))
    span = (at // 8, (at + len(music)) // 8)  # ms
    for config, most in ((VadConfig(), 1000), (ENERGY_V1, None)):
        result = analyse([customer, agent], config)
        talk_in_music = sum(max(0, min(s["end_ms"], span[1]) - max(s["start_ms"], span[0]))
                            for s in result.segments if s["channel"] == 1)
        if most is None:  # the level gate counts the music as agent talk
            assert talk_in_music > 25_000
            assert result.channels[1]["non_speech_ms"] is None
        else:
            assert talk_in_music <= most
            assert result.channels[1]["non_speech_ms"] >= 28_000
            assert result.call["non_speech_ms"] == sum(c["non_speech_ms"] for c in result.channels)
            assert result.call["non_talk_ms"] >= 29_000  # hold is non-talk time, as Contact Lens counts it


def test_knocks_and_clicks_are_not_speech():
    (customer, agent), spans = placed_call(pause_s=3.0, turns=6)
    knocks, where = sounds.transients(len(customer), 12, np.random.default_rng(2))
    customer = sounds.mix(customer, knocks)
    result = analyse([customer, agent])
    found = sounds.segment_frames(result.segments, 0, len(customer))
    truth = sounds.frames_of(spans[0], len(customer))
    knock_frames = sounds.frames_of(where, len(customer)) & ~truth
    assert (found & knock_frames).sum() <= 0.25 * knock_frames.sum()
    gate = analyse([customer, agent], ENERGY_V1)
    assert (sounds.segment_frames(gate.segments, 0, len(customer)) & knock_frames).sum() > 0.5 * knock_frames.sum()
