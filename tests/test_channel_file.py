"""Channel files: blocks land at their place on the call's grid as they stream in, and read back
exactly as the in-memory reference assembler (tests/reference_audio.py) places them."""
from __future__ import annotations

import numpy as np
import pytest

from tests.reference_audio import assemble_channel
from voicelake.media.channel_file import ChannelReader, ChannelWriter, Coverage


def pcm(values) -> bytes:
    return np.asarray(values, dtype="<i2").tobytes()


def test_coverage_merges_touching_ranges_and_reports_what_is_not_covered():
    c = Coverage([(10, 20), (30, 40)])
    assert c.uncovered(0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert c.uncovered(12, 18) == []
    c.add(20, 30)
    assert c.ranges() == ((10, 40),)
    c.add(0, 5)
    c.add(45, 50)
    c.add(3, 47)
    assert c.ranges() == ((0, 50),) and c.total == 50
    assert Coverage([(0, 100)]).minus(Coverage([(10, 20), (90, 120)])).ranges() == ((0, 10), (20, 90))


def test_blocks_are_placed_on_the_grid_and_the_first_written_keeps_overlapping_samples(tmp_path):
    w = ChannelWriter(str(tmp_path / "c.pcm"), origin_ms=1000, end_ms=1010, sample_rate=8000)
    w.write(1002, pcm(range(1, 9)))  # 1 ms = 8 samples at grid sample 16
    w.write(1002, pcm([-1] * 16))  # a re-sent block overlapping it: only its new half is written
    w.write(999, pcm([7] * 16))  # starts before the grid: its head is cut off
    w.write(1009, pcm([5] * 16))  # runs past the end: its tail is cut off
    piece = w.close()
    assert piece.ranges == ((0, 8), (16, 32), (72, 80)) and piece.cut_at_end
    assert piece.overlap_samples == 8
    with ChannelReader([(piece.path, piece.ranges)]) as r:
        x = r.read(0, 90)
    expected = np.zeros(90, np.int16)
    expected[0:8] = 7
    expected[16:24] = range(1, 9)
    expected[24:32] = -1
    expected[72:80] = 5
    assert np.array_equal(x, expected)  # past the end of the file: silence


def test_a_channel_written_in_fragment_order_equals_the_in_memory_assembly(tmp_path):
    rng = np.random.default_rng(7)
    blocks, t = [], 5_000
    for _ in range(200):
        n = 512
        blocks.append((t, rng.integers(-3000, 3000, n, dtype=np.int16).tobytes()))
        t += 64 + (130 if rng.random() < 0.05 else 0)  # a few holes
    w = ChannelWriter(str(tmp_path / "c.pcm"), origin_ms=5_000, end_ms=t + 1000, sample_rate=8000)
    for block in blocks:
        w.write(*block)
    piece = w.close()
    whole = assemble_channel(blocks, start_ms=5_000, sample_rate=8000)
    with ChannelReader([(piece.path, piece.ranges)]) as r:
        streamed = np.concatenate([r.read(a, 1000) for a in range(0, len(whole.samples), 1000)])
    assert np.array_equal(streamed[:len(whole.samples)], whole.samples)
    holes = Coverage([(0, len(whole.samples))]).minus(Coverage(piece.ranges))
    assert [(a // 8 + 5_000, b // 8 + 5_000) for a, b in holes] == \
        [(g.start_ms, g.end_ms) for g in whole.gaps]


def test_a_channel_in_two_pieces_reads_as_one_and_the_earlier_piece_wins_overlaps(tmp_path):
    first = ChannelWriter(str(tmp_path / "a.pcm"), origin_ms=0, end_ms=100, sample_rate=1000)
    first.write(10, pcm([1] * 20))
    second = ChannelWriter(str(tmp_path / "b.pcm"), origin_ms=0, end_ms=100, sample_rate=1000)
    second.write(20, pcm([2] * 30))
    a, b = first.close(), second.close()
    with ChannelReader([(a.path, a.ranges), (b.path, b.ranges)]) as r:
        x = r.read(5, 50)
        assert r.coverage.ranges() == ((10, 50),)
    assert x.tolist() == [0] * 5 + [1] * 20 + [2] * 20 + [0] * 5


def test_a_block_wholly_outside_the_grid_covers_nothing(tmp_path):
    w = ChannelWriter(str(tmp_path / "c.pcm"), origin_ms=1000, end_ms=2000, sample_rate=8000)
    w.write(0, pcm([1] * 80))
    w.write(5000, pcm([1] * 80))
    piece = w.close()
    assert piece.ranges == () and piece.first is None and piece.blocks == 2


@pytest.mark.parametrize("chunk", [1, 159, 160, 161, 4000])
def test_feature_state_is_the_same_for_any_chunking(chunk):
    from voicelake.analysis.features import SignalAccumulator, channel_signal
    rng = np.random.default_rng(3)
    x = rng.integers(-32768, 32768, 8_123, dtype=np.int16)
    x[100:105] = 32767  # a clip event
    x[159:163] = -32768  # another, across a frame and chunk boundary
    x[-2:] = 32767  # a clipped run too short to count, at the very end
    acc = SignalAccumulator(8000)
    for a in range(0, len(x), chunk):
        acc.add(x[a:a + chunk])
    got, whole = acc.result(), channel_signal(x, 8000)
    assert (got.samples, got.total, got.clipped, got.clip_events) == \
        (whole.samples, whole.total, whole.clipped, whole.clip_events)
    assert whole.clip_events == 2 and whole.clipped == 5 + 4 + 2 + int(np.count_nonzero(
        np.abs(np.r_[x[:100], x[105:159], x[163:-2]].astype(np.int32)) >= 32735))
    assert np.array_equal(got.frames.bounds, whole.frames.bounds)
    assert np.array_equal(got.frames.power, whole.frames.power)
    assert np.array_equal(got.frames.peak, whole.frames.peak)
