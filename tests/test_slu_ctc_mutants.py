"""sense.slu.ctc against a float64 brute force over every alignment (make mutation).

The reference sums the probability of every frame path that collapses (repeats
merged, blanks dropped) to the target, as the definition of the CTC loss.
"""

import itertools
import math

import torch

from sense.slu.ctc import ctc_loss, greedy_decode


def _collapse(path, blank):
    out, prev = [], None
    for s in path:
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return out


def _brute_force_nll(probs, target, blank):
    """-log P(target) over every path of ``probs`` ([T, V] float64)."""
    t, v = probs.shape
    total = 0.0
    for path in itertools.product(range(v), repeat=t):
        if _collapse(path, blank) == list(target):
            total += math.prod(float(probs[i, s]) for i, s in enumerate(path))
    return -math.log(total) if total > 0 else math.inf


def _batch(seed=0, b=2, t=5, v=3):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, v, generator=gen, dtype=torch.float64).log_softmax(-1)


def test_ctc_loss_is_the_mean_per_symbol_nll_over_every_alignment():
    """Two utterances of 5 and 3 of 5 frames (4 symbols, so that frames and vocabulary
    differ), targets of 2 and 1 symbols: the mean of each NLL over its target length."""
    lp = _batch(t=5, v=4)
    lens = torch.tensor([1.0, 0.6])
    targets = torch.tensor([[1, 2], [3, 0]])
    target_lens = torch.tensor([1.0, 0.5])
    expected = (
        _brute_force_nll(lp[0].exp(), [1, 2], 0) / 2 + _brute_force_nll(lp[1, :3].exp(), [3], 0) / 1
    ) / 2
    assert math.isclose(float(ctc_loss(lp, lens, targets, target_lens)), expected, rel_tol=1e-5)


def test_ctc_loss_with_another_blank():
    """Blank at index 2: the paths that collapse to [1, 0] treat 2 as the blank."""
    lp = _batch(seed=1, b=1, t=4, v=3)
    got = ctc_loss(lp, torch.ones(1), torch.tensor([[1, 0]]), torch.ones(1), blank_index=2)
    expected = _brute_force_nll(lp[0].exp(), [1, 0], 2) / 2
    assert math.isclose(float(got), expected, rel_tol=1e-5)


def test_an_impossible_target_costs_zero_not_infinity():
    """Two symbols in one frame have no alignment: zero_infinity makes it 0."""
    lp = _batch(seed=2, b=1, t=1, v=3)
    assert float(ctc_loss(lp, torch.ones(1), torch.tensor([[1, 2]]), torch.ones(1))) == 0.0


def test_greedy_runs_of_blank_do_not_extend_the_symbol_before():
    """Best path 1 0 0 2: symbol 1 spans frame 0 only, symbol 2 frame 3."""
    best = [1, 0, 0, 2]
    log_probs = torch.full((1, 4, 3), -10.0)
    log_probs[0, torch.arange(4), torch.tensor(best)] = 0.0
    ((ids, first, last),) = greedy_decode(log_probs, torch.ones(1))
    assert (ids, first, last) == ([1, 2], [0, 3], [0, 3])
