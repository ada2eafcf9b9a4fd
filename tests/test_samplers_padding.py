"""Padding of the duration sampler's batches, pinned on a case computed by hand.

Eight clips, 8 s of padded audio per batch (longest x count <= 8):

    index     0    1    2    3    4    5    6     7
    seconds   2.5  4.0  1.0  2.0  3.5  0.5  2.25  1.5

Windows of 4 in the order 0..7. Window (0, 1, 2, 3) sorted: 2 (1.0), 3 (2.0),
0 (2.5), 1 (4.0); [2, 3, 0] pads to 2.5 x 3 = 7.5 s, adding 1 would give
4.0 x 4 = 16 s, so 1 is the window's last, partial batch. Window (4, 5, 6, 7)
sorted: 5 (0.5), 7 (1.5), 6 (2.25), 4 (3.5); [5, 7, 6] pads to 2.25 x 3 =
6.75 s, 4 is left over. The held-back 4 (3.5) and 1 (4.0) make one batch of
4.0 x 2 = 8 s. Three batches: padded 7.5 + 6.75 + 8 = 22.25 s for 17.25 s of
audio: padded fraction 5 / 22.25. Each window packed on its own (the sampler
before) gives four batches, [2, 3, 0], [1], [5, 7, 6], [4]: 21.75 s padded,
fraction 4.5 / 21.75, one more step.

Sorted as one window (the whole epoch): 5, 2, 7, 3, 6, 0, 4, 1 -> [5, 2, 7, 3]
(2.0 x 4 = 8 s), [6, 0] (2.5 x 2 = 5 s; adding 4 gives 10.5 s), [4, 1] (8 s):
padded 21 s, fraction 3.75 / 21.
"""

import numpy as np
import pytest

from benchmarks.padding import batch_stats, pair_repeat
from sense.samplers import BalancedDurationBatchSampler, pack_batches, sorted_window_batches

DURATIONS = np.array([2.5, 4.0, 1.0, 2.0, 3.5, 0.5, 2.25, 1.5])
BUDGET = 8.0


def padded_fraction(batches, durations=DURATIONS):
    padded = sum(durations[b].max() * len(b) for b in batches)
    return 1.0 - sum(durations[b].sum() for b in batches) / padded


def test_windows_hold_back_their_partial_batch():
    batches = sorted_window_batches(np.arange(8), DURATIONS, BUDGET, window=4)
    assert batches == [[2, 3, 0], [5, 7, 6], [4, 1]]
    assert padded_fraction(batches) == pytest.approx(5.0 / 22.25)
    # each window on its own: one batch more
    alone = [
        b
        for w in (range(4), range(4, 8))
        for b in pack_batches(np.array(sorted(w, key=lambda i: DURATIONS[i])), DURATIONS, BUDGET)
    ]
    assert alone == [[2, 3, 0], [1], [5, 7, 6], [4]]
    assert padded_fraction(alone) == pytest.approx(4.5 / 21.75)


def test_whole_epoch_window_through_the_sampler():
    """Distinct durations: one sorted window gives the same batches whatever the draw."""
    for seed in range(3):
        s = BalancedDurationBatchSampler(
            DURATIONS,
            ["xx"] * 8,
            BUDGET,
            alpha=1.0,
            seed=seed,
            num_replicas=1,
            rank=0,
            sort_window_batches=None,
        )
        batches = list(s)
        assert sorted(batches) == [[4, 1], [5, 2, 7, 3], [6, 0]]
        assert padded_fraction(batches) == pytest.approx(3.75 / 21.0)
        frames = np.round(DURATIONS * 4).astype(int)  # 4 frames per second: exact here
        stats = batch_stats(batches, DURATIONS, frames, BUDGET)
        assert stats["padded_fraction"] == pytest.approx(3.75 / 21.0)
        assert stats["budget_fill"] == pytest.approx(21.0 / 24.0)


def test_held_back_items_meet_copies_in_other_batches():
    """An up-sampled clip's copies held back from several windows still go to different batches."""
    durations = np.array([2.0, 2.0, 2.0, 3.9])
    order = np.array([0, 1, 3, 0, 2, 3])  # 3 is the last of both windows of 3
    batches = sorted_window_batches(order, durations, 8.0, window=3)
    assert all(len(set(b)) == len(b) for b in batches)
    assert sorted(i for b in batches for i in b) == sorted(order.tolist())


@pytest.mark.parametrize("window", [1, 10, None])
def test_ranks_share_the_same_batches_at_any_window(window):
    rng = np.random.default_rng(0)
    durations = rng.uniform(1.0, 8.0, size=300)
    ranks = [
        list(
            BalancedDurationBatchSampler(
                durations,
                ["a"] * 300,
                20.0,
                alpha=1.0,
                num_replicas=3,
                rank=r,
                sort_window_batches=window,
            )
        )
        for r in range(3)
    ]
    assert len({len(r) for r in ranks}) == 1
    seen = [i for r in ranks for b in r for i in b]
    assert len(seen) == len(set(seen))
    with pytest.raises(ValueError):
        BalancedDurationBatchSampler(durations, ["a"] * 300, 20.0, sort_window_batches=0)


def test_pair_repeat():
    assert pair_repeat([[0, 1], [2, 3]], [[0, 1], [2, 3]], 4) == 1.0
    assert pair_repeat([[0, 1], [2, 3]], [[0, 2], [1, 3]], 4) == 0.0


def test_benchmark_reads_a_release_and_renders(tmp_path):
    from benchmarks import padding, report

    locale = tmp_path / "xx"
    locale.mkdir()
    rows = "".join(f"common_voice_xx_{i}.mp3\t{1000 + 37 * i}\n" for i in range(300))
    (locale / "clip_durations.tsv").write_text("clip\tduration[ms]\n" + rows, encoding="utf-8")
    r = padding.run([str(tmp_path)], synthetic_clips=500)
    assert [s["clips"] for s in r["sources"]] == [300, 500]
    rows = r["sources"][0]["rows"]
    assert len(rows) == len(padding.BUDGETS) * (len(padding.WINDOWS) + 3)
    for row in rows:
        assert 0.0 <= row["padded_fraction"] < 1.0 and 0.0 <= row["pair_repeat"] <= 1.0
        assert row["frames_per_real_frame"] == pytest.approx(1 / (1 - row["padded_fraction"]))
    text = "\n".join(report._padding(r))
    assert "sense, sort window 50 (default)" in text and "SpeechBrain DynamicBatchSampler" in text
