"""Specifications of the whole-array reference (tests/reference_audio.py: blocks -> channel timeline,
channels -> stereo, ML WAV) and of voicelake.audio's float and WAV forms.

Blocks are (epoch ms, s16le bytes) as the media stage hands them over; each test block is filled
with one distinct value, so where its samples landed can be read straight off the result.
"""
from __future__ import annotations

import io
import random
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference_audio import (
    AssembledChannel,
    align_channels,
    assemble_channel,
    level_normalise,
    ml_wav_bytes,
    normalise,
)
from voicelake.audio import Gap, to_float, to_int16, wav_bytes

T0 = 1_715_698_800_000  # 2024-05-14T15:00:00Z
CONNECT_BLOCK = 512  # samples: 64 ms at 8 kHz


def block(t_ms: int, value: int, samples: int = CONNECT_BLOCK) -> tuple[int, bytes]:
    return t_ms, np.full(samples, value, dtype="<i2").tobytes()


def expected(*runs: tuple[int, int]) -> np.ndarray:
    """Concatenate (value, samples) runs."""
    return np.concatenate([np.full(n, v, dtype=np.int16) for v, n in runs])


def test_out_of_order_and_duplicated_blocks_give_one_contiguous_timeline():
    blocks = [block(T0 + 128, 3), block(T0, 1), block(T0 + 64, 2), block(T0, 1), block(T0 + 64, 2)]
    ch = assemble_channel(blocks, start_ms=T0, end_ms=T0 + 192)
    assert ch.samples.dtype == np.int16
    assert np.array_equal(ch.samples, expected((1, 512), (2, 512), (3, 512)))
    assert ch.gaps == ()
    assert (ch.blocks, ch.samples_present, ch.overlap_samples, ch.gap_ms) == (5, 1536, 1024, 0)
    assert (ch.start_ms, ch.end_ms, ch.sample_rate) == (T0, T0 + 192, 8000)


def test_holes_are_zero_filled_and_reported_as_gaps_including_head_and_tail():
    # window 1000 ms; audio at 100-164, 164-228, then 500-564; nothing after
    blocks = [block(T0 + 100, 1), block(T0 + 164, 2), block(T0 + 500, 3)]
    ch = assemble_channel(blocks, start_ms=T0, end_ms=T0 + 1000)
    assert len(ch.samples) == 8000
    assert np.array_equal(ch.samples, expected((0, 800), (1, 512), (2, 512), (0, 2176), (3, 512),
                                               (0, 3488)))
    assert ch.gaps == (Gap(T0, T0 + 100), Gap(T0 + 228, T0 + 500), Gap(T0 + 564, T0 + 1000))
    assert [g.duration_ms for g in ch.gaps] == [100, 272, 436]
    assert (ch.samples_present, ch.gap_ms) == (1536, 808)


def test_blocks_partly_outside_the_window_are_cut():
    blocks = [block(T0 - 32, 1), block(T0 + 32, 2), block(T0 + 96, 3)]
    ch = assemble_channel(blocks, start_ms=T0, end_ms=T0 + 128)
    assert np.array_equal(ch.samples, expected((1, 256), (2, 512), (3, 256)))
    assert (ch.gaps, ch.samples_present, ch.overlap_samples) == ((), 1024, 0)


def test_overlapping_blocks_keep_the_earlier_block_and_count_the_overlap():
    # second block starts 16 ms (128 samples) before the first one ends
    ch = assemble_channel([block(T0 + 48, 2), block(T0, 1)], start_ms=T0, end_ms=T0 + 112)
    assert np.array_equal(ch.samples, expected((1, 512), (2, 384)))
    assert (ch.overlap_samples, ch.samples_present, ch.gaps) == (128, 896, ())


def test_same_start_keeps_the_longer_block():
    ch = assemble_channel([block(T0, 7, 160), block(T0, 8, 320)], start_ms=T0, end_ms=T0 + 40)
    assert np.array_equal(ch.samples, expected((8, 320)))
    assert ch.overlap_samples == 160


def test_a_hole_of_at_most_one_ms_is_silence_but_no_gap():
    # 20 ms blocks (Chime) whose timecodes leave 1 ms, then 2 ms, uncovered
    blocks = [block(T0, 1, 160), block(T0 + 21, 2, 160), block(T0 + 43, 3, 160)]
    ch = assemble_channel(blocks, start_ms=T0, end_ms=T0 + 63)
    assert np.array_equal(ch.samples, expected((1, 160), (0, 8), (2, 160), (0, 16), (3, 160)))
    assert ch.gaps == (Gap(T0 + 41, T0 + 43),)


def test_without_a_window_the_channel_spans_its_blocks():
    ch = assemble_channel([block(T0 + 200, 2), block(T0 + 72, 1)])
    assert (ch.start_ms, ch.end_ms) == (T0 + 72, T0 + 264)
    assert np.array_equal(ch.samples, expected((1, 512), (0, 512), (2, 512)))
    assert ch.gaps == (Gap(T0 + 136, T0 + 200),)


def test_no_blocks_in_the_window_is_one_gap_of_silence():
    ch = assemble_channel([block(T0 + 5000, 1)], start_ms=T0, end_ms=T0 + 250)
    assert np.array_equal(ch.samples, np.zeros(2000, dtype=np.int16))
    assert ch.gaps == (Gap(T0, T0 + 250),)
    assert (ch.blocks, ch.samples_present) == (1, 0)
    assert assemble_channel([], start_ms=T0, end_ms=T0 + 10).gaps == (Gap(T0, T0 + 10),)


def test_a_trailing_odd_byte_is_dropped():
    t, pcm = block(T0, 5, 4)
    ch = assemble_channel([(t, pcm + b"\x01")], start_ms=T0, end_ms=T0 + 1)
    assert np.array_equal(ch.samples, expected((5, 4), (0, 4)))


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="no extent"):
        assemble_channel([])
    with pytest.raises(ValueError, match="before start_ms"):
        assemble_channel([block(T0, 1)], start_ms=T0, end_ms=T0 - 1)


def test_sixteen_khz_blocks_land_on_sixteen_khz_samples():
    ch = assemble_channel([block(T0 + 10, 4, 160)], start_ms=T0, end_ms=T0 + 30, sample_rate=16000)
    assert np.array_equal(ch.samples, expected((0, 160), (4, 160), (0, 160)))
    assert ch.gaps == (Gap(T0, T0 + 10), Gap(T0 + 20, T0 + 30))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), duplicates=st.integers(0, 10))
def test_arrival_order_and_repeated_fragments_never_change_the_channel(seed, duplicates):
    rng = random.Random(seed)
    blocks = [block(T0 + 64 * i, i + 1) for i in range(30) if rng.random() > 0.2]
    shuffled = blocks + [rng.choice(blocks) for _ in range(duplicates)]
    rng.shuffle(shuffled)
    a = assemble_channel(blocks, start_ms=T0, end_ms=T0 + 64 * 30)
    b = assemble_channel(shuffled, start_ms=T0, end_ms=T0 + 64 * 30)
    assert np.array_equal(a.samples, b.samples)
    assert (a.gaps, a.samples_present) == (b.gaps, b.samples_present)
    assert b.overlap_samples == 512 * duplicates


def test_two_legs_with_different_starts_align_on_absolute_time():
    # Chime: the callee leg's stream starts 500 ms later and ends earlier than the caller's
    caller = [block(T0 + 20 * i, 1, 160) for i in range(100)]  # 0-2000 ms
    callee = [block(T0 + 500 + 20 * i, 2, 160) for i in range(50)]  # 500-1500 ms
    legs = [assemble_channel(b, start_ms=T0, end_ms=None) for b in (caller, callee)]
    stereo = align_channels(legs)
    assert stereo.shape == (16000, 2) and stereo.dtype == np.int16
    assert np.array_equal(stereo[:, 0], np.full(16000, 1, dtype=np.int16))
    assert np.array_equal(stereo[:, 1], expected((0, 4000), (2, 8000), (0, 4000)))
    assert legs[1].gaps == (Gap(T0, T0 + 500),)  # the head is a gap; the padded tail is not


def test_align_refuses_channels_on_different_clocks():
    a = assemble_channel([block(T0, 1)], start_ms=T0, end_ms=T0 + 64)
    b = assemble_channel([block(T0, 1)], start_ms=T0 + 1, end_ms=T0 + 64)
    with pytest.raises(ValueError, match="call window"):
        align_channels([a, b])
    c = AssembledChannel(a.samples, T0, 16000, (), 1, 512, 0)
    with pytest.raises(ValueError, match="call window"):
        align_channels([a, c])


def test_to_float_and_to_int16_are_inverse():
    x = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    y = to_float(x)
    assert y.dtype == np.float32
    assert y.tolist() == [-1.0, -1 / 32768, 0.0, 1 / 32768, 32767 / 32768]
    assert np.array_equal(to_int16(y), x)
    assert to_int16(np.array([1.5, -1.5, 0.49 / 32768], dtype=np.float32)).tolist() == [32767, -32768, 0]


def test_normalise_resamples_to_16k_and_removes_dc():
    n = 8000 + 3
    t = np.arange(n) / 8000
    x = np.rint(3000 + 8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)  # DC 3000, 440 Hz
    y = normalise(x, 8000)
    assert y.dtype == np.float32
    assert len(y) == round(n * 16000 / 8000)
    assert abs(float(y.mean())) < 1e-4
    inner = y[1000:-1000]  # away from the filter's edge transients
    assert np.sqrt(np.mean(inner.astype(np.float64) ** 2)) == pytest.approx(8000 / 32768 / np.sqrt(2), rel=1e-3)
    spectrum = np.abs(np.fft.rfft(inner * np.hanning(len(inner))))
    assert np.argmax(spectrum) * 16000 / len(inner) == pytest.approx(440, abs=2)


def test_normalise_stereo_and_same_rate():
    x = np.stack([np.full(800, 100, dtype=np.int16), np.arange(800, dtype=np.int16)], axis=1)
    y = normalise(x, 8000)
    assert y.shape == (1600, 2) and y.dtype == np.float32
    same = normalise(x, 8000, target_sr=8000)
    assert np.array_equal(same[:, 0], np.zeros(800, dtype=np.float32))
    assert np.allclose(same[:, 1], (np.arange(800) - 399.5) / 32768)


def test_level_normalise_sets_each_channel_peak_and_leaves_silence():
    y = np.stack([np.array([0.1, -0.2, 0.05], dtype=np.float32), np.zeros(3, dtype=np.float32)], 1)
    out = level_normalise(y, peak_dbfs=-1.0)
    assert out.dtype == np.float32
    assert float(np.abs(out[:, 0]).max()) == pytest.approx(10 ** (-1 / 20), rel=1e-6)
    assert np.allclose(out[:, 0], y[:, 0] * (10 ** (-1 / 20) / 0.2))
    assert np.array_equal(out[:, 1], np.zeros(3, dtype=np.float32))


def test_wav_bytes_round_trips_with_an_exact_header_and_equal_bytes():
    x = np.stack([np.arange(-5, 5, dtype=np.int16), np.full(10, -32768, dtype=np.int16)], axis=1)
    data = wav_bytes(x, 8000)
    assert data == wav_bytes(x.copy(), 8000)
    assert len(data) == 44 + 10 * 2 * 2
    riff, size, wave_, fmt, fmt_size, pcm, channels, rate, byte_rate, align, bits, data_tag, n = \
        struct.unpack("<4sI4s4sIHHIIHH4sI", data[:44])
    assert (riff, size, wave_, fmt, fmt_size, pcm) == (b"RIFF", len(data) - 8, b"WAVE", b"fmt ", 16, 1)
    assert (channels, rate, byte_rate, align, bits) == (2, 8000, 8000 * 4, 4, 16)
    assert (data_tag, n) == (b"data", 40)
    back, sr = sf.read(io.BytesIO(data), dtype="int16")
    assert sr == 8000 and np.array_equal(back, x)


def test_wav_bytes_of_floats_scale_by_32768_and_clip():
    y = np.array([0.5, -1.0, 1.2, -1.2], dtype=np.float32)
    back, sr = sf.read(io.BytesIO(wav_bytes(y, 16000)), dtype="int16")
    assert sr == 16000 and back.tolist() == [16384, -32768, 32767, -32768]


def test_ml_wav_is_16k_stereo_peaking_at_minus_one_dbfs_per_channel():
    t = np.arange(8000) / 8000
    x = np.stack([np.rint(2000 * np.sin(2 * np.pi * 300 * t)),
                  np.rint(20000 * np.sin(2 * np.pi * 700 * t))], axis=1).astype(np.int16)
    data = ml_wav_bytes(x, 8000)
    assert data == ml_wav_bytes(x, 8000)
    back, sr = sf.read(io.BytesIO(data), dtype="int16")
    assert sr == 16000 and back.shape == (16000, 2)
    peak = round(32768 * 10 ** (-1 / 20))
    assert np.abs(back.astype(np.int32)).max(axis=0).tolist() == [peak, peak]
    mono, _ = sf.read(io.BytesIO(ml_wav_bytes(x[:, 0], 8000)), dtype="int16")
    assert np.array_equal(mono, back[:, 0])


def test_blocks_that_follow_on_coalesce_into_runs_that_assemble_to_the_same_samples():
    from voicelake.audio import coalesce_blocks

    pcm = [bytes([i]) * 1024 for i in range(1, 7)]  # 512 samples = 64 ms each at 8 kHz
    blocks = [(1000, pcm[0]), (1064, pcm[1]), (1128, pcm[2]),  # one run
              (1300, pcm[3]),                                   # after a hole
              (1364, pcm[4]), (1400, pcm[5])]                   # overlaps the one before
    runs = coalesce_blocks(blocks, 8000)
    assert [(t, len(b)) for t, b in runs] == [(1000, 3072), (1300, 2048), (1400, 1024)]

    def same(bl):
        return assemble_channel(bl, start_ms=1000, end_ms=1464, sample_rate=8000)
    assert same(runs).samples.tobytes() == same(blocks).samples.tobytes()
    assert same(runs).gaps == same(blocks).gaps
