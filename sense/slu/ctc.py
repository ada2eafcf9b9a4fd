"""CTC loss and greedy decoding with the frames each output symbol came from.

Example
-------
>>> log_probs = torch.log(torch.tensor([[[0.1, 0.9, 0.0], [0.1, 0.9, 0.0],
...                                      [0.9, 0.1, 0.0], [0.1, 0.0, 0.9]]]) + 1e-9)
>>> (ids, first, last), = greedy_decode(log_probs, torch.tensor([1.0]))
>>> ids, first, last
([1, 2], [0, 3], [1, 3])
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from sense.dataio import abs_lengths


class GreedyPath(NamedTuple):
    """Output of greedy CTC decoding for one utterance.

    Attributes
    ----------
    ids : list of int
        Emitted symbols (repeats merged, blanks removed).
    first, last : list of int
        First and last frame of each symbol's run.
    """

    ids: list[int]
    first: list[int]
    last: list[int]


def greedy_decode(
    log_probs: torch.Tensor, lens: torch.Tensor, blank_index: int = 0
) -> list[GreedyPath]:
    """Best symbol per frame, repeats merged, blanks dropped; with frame indices.

    Parameters
    ----------
    log_probs : torch.Tensor
        [B, T, V] per-frame (log-)scores.
    lens : torch.Tensor
        [B] relative lengths in (0, 1].
    blank_index : int
        The CTC blank.
    """
    best = log_probs.argmax(dim=-1).cpu()
    counts = abs_lengths(lens.cpu(), best.shape[1]).tolist()
    paths = []
    for row, n in zip(best.tolist(), counts):
        ids, first, last = [], [], []
        prev = None
        for t, symbol in enumerate(row[: int(n)]):
            if symbol != prev and symbol != blank_index:
                ids.append(symbol)
                first.append(t)
                last.append(t)
            elif symbol == prev and symbol != blank_index:
                last[-1] = t
            prev = symbol
        paths.append(GreedyPath(ids, first, last))
    return paths


def ctc_loss(
    log_probs: torch.Tensor,
    lens: torch.Tensor,
    targets: torch.Tensor,
    target_lens: torch.Tensor,
    blank_index: int = 0,
) -> torch.Tensor:
    """Mean CTC loss (per target symbol, as torch's ``reduction="mean"``).

    Parameters
    ----------
    log_probs : torch.Tensor
        [B, T, V] log-probabilities.
    lens : torch.Tensor
        [B] relative frame lengths.
    targets : torch.Tensor
        [B, L] padded symbol ids.
    target_lens : torch.Tensor
        [B] relative target lengths.

    Example
    -------
    >>> lp = torch.randn(2, 10, 5).log_softmax(-1)
    >>> ctc_loss(lp, torch.ones(2), torch.tensor([[1, 2], [3, 0]]), torch.tensor([1.0, 0.5])).dim()
    0
    """
    frames = abs_lengths(lens, log_probs.shape[1]).long()
    symbols = abs_lengths(target_lens, targets.shape[1]).long()
    return torch.nn.functional.ctc_loss(
        log_probs.float().transpose(0, 1),
        targets.long(),
        frames.to(log_probs.device),
        symbols.to(log_probs.device),
        blank=blank_index,
        zero_infinity=True,
    )
