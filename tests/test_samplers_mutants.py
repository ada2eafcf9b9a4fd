"""The sampler's decisions, pinned on cases computed by hand (the mutants of ``sense/samplers.py``).

Each test names what it pins; the derivations are in the comments.
"""

import numpy as np
import pytest
import torch

from sense.samplers import (
    BalancedDurationBatchSampler,
    BatchBudget,
    language_sampling_ratios,
    pack_batches,
    save_ratios,
    sorted_window_batches,
)


def test_default_alpha_is_one_half():
    # shares 3/4 and 1/4 of the seconds; alpha 1/2: p_b = 0.5 / (0.5 + sqrt(3)/2) = 1 / (1 + sqrt 3)
    r = language_sampling_ratios([3.0, 1.0], ["a", "b"])
    assert r["b"]["probability"] == pytest.approx(1 / (1 + 3**0.5), abs=1e-12)
    assert r["b"]["ratio"] == pytest.approx(4 / (1 + 3**0.5), abs=1e-12)


def test_ratios_take_one_clip_and_refuse_unequal_lengths():
    assert language_sampling_ratios([2.0], ["ca"])["ca"]["ratio"] == 1.0
    with pytest.raises(ValueError, match="equal length"):
        language_sampling_ratios([1.0, 2.0], ["ca"])
    with pytest.raises(ValueError, match="non-empty"):
        language_sampling_ratios([], [])


def test_ratio_file_is_indented_and_sorted(tmp_path):
    path = tmp_path / "ratios.json"
    save_ratios({"b": {"ratio": 1.0}, "a": {"share": 0.5, "hours": 2.0}}, str(path))
    assert path.read_text() == (
        '{\n  "a": {\n    "hours": 2.0,\n    "share": 0.5\n  },\n  "b": {\n    "ratio": 1.0\n  }\n}'
    )


def test_world_size_and_rank_come_from_torch_distributed(monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    s = BalancedDurationBatchSampler([1.0] * 8, ["ca"] * 8, 1.0, alpha=1.0)
    assert (s.num_replicas, s.rank) == (4, 3)
    assert len(s) == 2  # 8 one-clip batches over 4 ranks


def test_sub_second_clips_fill_the_budget():
    # 0.5 s x 4 = 2 s: one batch. A batch that starts from 1 s instead of 0 (pads every
    # clip to at least a second) would close after two.
    assert pack_batches(np.arange(4), np.full(4, 0.5), 2.0) == [[0, 1, 2, 3]]
    # Two copies of each clip: the first copies fill a batch, the copies that waited
    # start the next one from an empty batch, and fill it the same way.
    order = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    assert pack_batches(order, np.full(4, 0.5), 2.0) == [[0, 1, 2, 3], [0, 1, 2, 3]]


def test_a_window_of_one_clip_packs_the_epoch_whole():
    # Windows of 1: each clip is its window's only, partial batch, so all are held
    # back and then packed as one window: 3 x 1 s per batch.
    assert sorted_window_batches(np.arange(4), np.ones(4), 3.0, window=1) == [[0, 1, 2], [3]]
    with pytest.raises(ValueError, match="window"):
        sorted_window_batches(np.arange(4), np.ones(4), 3.0, window=0)


def test_no_window_filling_a_batch_packs_what_is_left_at_once():
    # Windows of 2 clips of 1 s under 3 s: every window is one partial batch, all
    # six are held back, and the six are then packed together: [0, 1, 2], [3, 4, 5].
    assert sorted_window_batches(np.arange(6), np.ones(6), 3.0, window=2) == [
        [0, 1, 2],
        [3, 4, 5],
    ]
    # The last window is the whole rest and one batch: it is kept, not held back again.
    assert sorted_window_batches(np.arange(2), np.ones(2), 4.0, window=2) == [[0, 1]]


def test_held_back_clips_go_through_windows_of_the_same_size_again():
    """Durations 2.0, 3.0, 2.5, 1.0; windows of 2; 5.5 s per batch.

    Pass 1: window (0, 1) -> [0], [1] (3 x 2 = 6 > 5.5), 1 held back; window
    (2, 3) sorted 3, 2 -> [3, 2] (2.5 x 2 = 5), held back whole. Pass 2 over 1, 3,
    2 in windows of 2: (1, 3) sorted 3, 1 -> [3], [1], 1 held back; (2) held
    back. Pass 3: 2, 1 -> [2], [1]. Re-packing the three held-back clips as one
    window would have rejoined [3, 2]: they meet only the clips of a window.
    """
    durations = np.array([2.0, 3.0, 2.5, 1.0])
    assert sorted_window_batches(np.arange(4), durations, 5.5, window=2) == [[0], [3], [2], [1]]


def test_ties_keep_their_order_whatever_the_sort_kernel():
    """40 clips, 1 s at odd and 2 s at even indices, one window, 10 s per batch.

    A stable sort gives the odd clips in order, then the even ones: batches of ten
    1 s clips, then of five 2 s clips. numpy's default sort of more than 16 ties is
    not stable, and its order depends on the CPU's kernels: two DDP ranks on
    different CPUs would build different batch lists.
    """
    durations = np.where(np.arange(40) % 2, 1.0, 2.0)
    odd, even = list(range(1, 40, 2)), list(range(0, 40, 2))
    expected = [odd[:10], odd[10:]] + [even[i : i + 5] for i in range(0, 20, 5)]
    assert sorted_window_batches(np.arange(40), durations, 10.0, window=40) == expected


def test_window_items_are_window_batches_of_median_clips():
    def window(durations, budget, batches):
        s = BalancedDurationBatchSampler(
            durations, ["ca"] * len(durations), budget, alpha=1.0, sort_window_batches=batches
        )
        return s._window_items(drawn=37)

    assert window([1.0, 2.0, 3.0], 8.0, batches=3) == 12  # 3 batches x 8 s / 2 s
    assert window([0.5] * 4, 2.0, batches=2) == 8  # 2 x 2 s / 0.5 s
    assert window([2.0] * 3, 2.0, batches=1) == 1  # one clip a batch
    assert window([2.0] * 3, 1.0, batches=1) == 1  # budget under a clip: still one
    assert window([1.0, 2.0, 3.0], 8.0, batches=None) == 37  # the whole epoch


def test_durations_read_as_text_are_numbers():
    s = BalancedDurationBatchSampler(["2.0", "1.0", "1.5"], ["ca"] * 3, 4.0, alpha=1.0)
    assert s.durations.tolist() == [2.0, 1.0, 1.5]
    assert sorted(len(b) for b in s) == [1, 2]  # [1.0, 1.5] (3 s), then [2.0]


def test_a_budget_must_be_positive():
    with pytest.raises(ValueError, match="max_batch_duration"):
        BalancedDurationBatchSampler([1.0], ["ca"], 0.0)
    assert len(BalancedDurationBatchSampler([0.25, 0.25], ["ca"] * 2, 0.5, alpha=1.0)) == 1


def test_a_down_sampled_language_draws_distinct_clips():
    # alpha 0 with 10 s of "big" and 2 s of "rare": p = 1/2 each, ratio of big
    # (1/2) / (10/12) = 0.6, so 6 of its 10 clips, each at most once, every epoch.
    durations, languages = [1.0] * 12, ["big"] * 10 + ["rare"] * 2
    s = BalancedDurationBatchSampler(durations, languages, 4.0, alpha=0.0)
    for epoch in range(5):
        s.set_epoch(epoch)
        big = [i for b in s for i in b if i < 10]
        assert len(big) == 6 and len(set(big)) == 6, (epoch, big)


def test_one_batch_per_rank_and_the_epoch_seconds_of_all_ranks():
    # 4 clips of 1 s, 2 s per batch: 2 batches, one for each of 2 ranks; each rank
    # sees 2 s, and the epoch draws 4 s over both.
    ranks = [
        BalancedDurationBatchSampler([1.0] * 4, ["ca"] * 4, 2.0, alpha=1.0, num_replicas=2, rank=r)
        for r in range(2)
    ]
    batches = [list(s) for s in ranks]
    assert [len(b) for b in batches] == [1, 1]
    assert sorted(i for b in batches for i in b[0]) == [0, 1, 2, 3]
    assert [s.epoch_seconds() for s in ranks] == [4.0, 4.0]


def test_for_this_run_reads_torchrun_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    budget = BatchBudget.for_this_run(8, "global", grad_accumulation=2)
    assert (budget.world_size, budget.grad_accumulation, budget.per_gpu_seconds) == (4, 2, 1.0)


@pytest.mark.parametrize(
    "seconds, world_size, grad_accumulation", [(0, 1, 1), (8, 0, 1), (8, 1, 0)]
)
def test_budget_refuses_a_zero(seconds, world_size, grad_accumulation):
    with pytest.raises(ValueError, match="batch_seconds > 0"):
        BatchBudget(seconds, "global", world_size, grad_accumulation)


def test_budget_takes_under_a_second():
    assert BatchBudget(0.5, "per_gpu").per_gpu_seconds == 0.5


def test_describe_states_both_budgets_steps_and_passes():
    budget = BatchBudget(1200, "global", world_size=4, grad_accumulation=2)
    # 3 epochs x 7,200 s drawn / 3,600 s of data = 6 passes
    assert budget.describe(10, 3, epoch_seconds=7200.0, data_seconds=3600.0) == (
        "batch budget (global 1200 s): 150 s of padded audio per GPU batch, 1200 s per "
        "optimizer step (4 GPU(s) x 2 accumulated); 10 steps per epoch x 3 epochs = 30 "
        "steps, 6.00 passes over the 1.00 h of training audio"
    )
    assert "0.25 passes over the 0.00 h" in budget.describe(1, 1, 0.125, data_seconds=0.5)
