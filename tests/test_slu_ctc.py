"""Greedy CTC decoding: repeats merged only within a run, blanks dropped, frame spans kept."""

import itertools
import random

import pytest
import torch

from sense.slu.ctc import greedy_decode

VOCAB = 5


def scores(frames, vocab=VOCAB):
    """``[1, T, V]`` log-scores whose per-frame argmax is ``frames``."""
    out = torch.full((1, len(frames), vocab), -5.0)
    for t, symbol in enumerate(frames):
        out[0, t, symbol] = -0.1
    return out


def reference(frames, blank):
    """CTC's collapse by its definition: merge runs of equal symbols, then drop blanks."""
    ids, first, last, t = [], [], [], 0
    for symbol, run in itertools.groupby(frames):
        n = len(list(run))
        if symbol != blank:
            ids.append(symbol)
            first.append(t)
            last.append(t + n - 1)
        t += n
    return ids, first, last


@pytest.mark.parametrize(
    "frames, expected",
    [
        ([1, 0, 1], ([1, 1], [0, 2], [0, 2])),  # "a _ a" -> "aa"
        ([1, 1], ([1], [0], [1])),  # "a a" -> "a"
        ([0, 0, 2, 2, 0, 3, 0], ([2, 3], [2, 5], [3, 5])),  # blanks at both edges
        ([0, 0, 0], ([], [], [])),  # blanks only
        ([2, 0, 0, 2, 2, 1, 1, 0], ([2, 2, 1], [0, 3, 5], [0, 4, 6])),
        ([3, 4, 3, 4], ([3, 4, 3, 4], [0, 1, 2, 3], [0, 1, 2, 3])),  # no blank between changes
        ([4], ([4], [0], [0])),
    ],
    ids=["a_a", "aa", "edges", "blank-only", "mixed", "alternating", "one-frame"],
)
def test_greedy_decode_hand_made(frames, expected):
    (path,) = greedy_decode(scores(frames), torch.ones(1))
    assert (path.ids, path.first, path.last) == expected


def test_greedy_decode_other_blank_index():
    # with blank 3, the 0s are symbols: "0 _ 0" -> "00", and 3s split runs
    (path,) = greedy_decode(scores([0, 3, 0, 0, 3, 3, 2]), torch.ones(1), blank_index=3)
    assert (path.ids, path.first, path.last) == ([0, 0, 2], [0, 2, 6], [0, 3, 6])


def test_greedy_decode_stops_at_each_utterances_length():
    # a batch: the second utterance's 4 real frames (of 8) end inside a run
    rows = [[1, 1, 0, 2, 2, 0, 3, 3], [2, 0, 2, 2, 4, 4, 4, 1]]
    log_probs = torch.cat([scores(r) for r in rows])
    paths = greedy_decode(log_probs, torch.tensor([1.0, 0.5]))
    assert [tuple(p) for p in paths] == [
        ([1, 2, 3], [0, 3, 6], [1, 4, 7]),
        ([2, 2], [0, 2], [0, 3]),
    ]


def test_greedy_decode_matches_the_definition_on_random_paths():
    rng = random.Random(0)
    rows = [[rng.choice([0, 0, 1, 2, 2, 3]) for _ in range(12)] for _ in range(50)]
    paths = greedy_decode(torch.cat([scores(r) for r in rows]), torch.ones(len(rows)))
    for row, path in zip(rows, paths):
        assert tuple(path) == reference(row, blank=0), row
