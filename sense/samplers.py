"""Language re-balancing and dynamic batching by audio duration, DDP-aware.

Common Voice is very unbalanced (1,748 h of Catalan, 1 minute of Tigrinya).
SAMU-XLSR (Eq. 3) re-balances languages by sampling language ``l`` with
probability

    p_l = q_l ** alpha / sum_k q_k ** alpha,    q_l = n_l / N

where ``n_l`` is the amount of data (here: hours) of language ``l``: ``alpha =
1`` keeps the natural distribution, ``alpha = 0`` makes every language equally
likely. Each epoch then draws ``r_l = p_l / q_l`` times the data of language
``l``: low-resource languages are up-sampled (``r_l > 1``, whole copies plus a
random part), high-resource ones down-sampled (``r_l < 1``, a random subset).

The drawn utterances are grouped into batches whose *padded* audio duration
(longest utterance x batch size) stays under a budget: the SENSE paper fills
batches by minutes of audio, not by count. Under DDP every rank builds the same
list of batches from the same seed and keeps every ``world_size``-th one, cut
to the same count on every rank, so ranks see disjoint data and take the same
number of steps.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

from sense.io import write_json_atomic

# Batches are formed inside windows of this many batches' worth of shuffled
# utterances, sorted by duration, so padding stays small while the order stays random:
# on Common Voice's durations at the recipe's 1,200 s per GPU, 1.5-3% of the frames
# are padding (docs/benchmarks/cpu-padding.md).
SORT_WINDOW_BATCHES = 50


def language_sampling_ratios(
    durations: Sequence[float], languages: Sequence[str], alpha: float = 0.5
) -> dict[str, dict[str, float]]:
    """Per-language re-sampling ratios of SAMU-XLSR Eq. 3.

    Parameters
    ----------
    durations : sequence of float
        Duration in seconds of each utterance.
    languages : sequence of str
        Language of each utterance.
    alpha : float
        Smoothing exponent in [0, 1].

    Returns
    -------
    dict
        ``{lang: {"hours", "share", "probability", "ratio"}}``; ``ratio`` is the
        factor applied to the language's data in each epoch.

    Example
    -------
    >>> r = language_sampling_ratios([1.0] * 9 + [1.0], ["ca"] * 9 + ["ti"], alpha=0.0)
    >>> round(r["ti"]["ratio"], 2), round(r["ca"]["ratio"], 2)
    (5.0, 0.56)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if len(durations) != len(languages) or len(durations) == 0:
        raise ValueError("durations and languages must be non-empty and of equal length")
    totals: dict[str, float] = defaultdict(float)
    for dur, lang in zip(durations, languages):
        totals[lang] += float(dur)
    grand = sum(totals.values())
    shares = {lang: t / grand for lang, t in totals.items()}
    weights = {lang: q**alpha for lang, q in shares.items()}
    norm = sum(weights.values())
    return {
        lang: {
            "hours": totals[lang] / 3600.0,
            "share": shares[lang],
            "probability": weights[lang] / norm,
            "ratio": (weights[lang] / norm) / shares[lang],
        }
        for lang in sorted(totals)
    }


def save_ratios(ratios: dict, path: str) -> None:
    """Write the ratios of :func:`language_sampling_ratios` as JSON (atomically)."""
    write_json_atomic(path, ratios, indent=2, sort_keys=True)


def _dist_info(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if initialised else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank {rank} outside [0, {num_replicas})")
    return num_replicas, rank


def pack_batches(
    order: np.ndarray,
    durations: np.ndarray,
    max_batch_duration: float,
    max_batch_size: int | None = None,
) -> list[list[int]]:
    """Fill batches in ``order`` up to the padded budget; copies of one item go to different batches.

    A batch closes when one more item would make its longest item x its count
    exceed ``max_batch_duration`` (or its count exceed ``max_batch_size``). An
    up-sampled item appears several times in ``order``, side by side after a
    duration sort: a copy that meets itself in the current batch waits for the
    next one (in-batch negatives of a contrastive loss stay true negatives).

    Example
    -------
    >>> pack_batches(np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0]), 4.0)
    [[0, 1], [2]]
    """
    batches, current, members, longest = [], [], set(), 0.0
    queue, waiting = deque(np.asarray(order).tolist()), []
    while queue or waiting:
        if not queue:  # the copies left over start a batch of their own
            queue.extend(waiting)
            waiting = []
            if current:
                batches.append(current)
                current, members, longest = [], set(), 0.0
        i = queue.popleft()
        if i in members:
            waiting.append(i)
            continue
        dur = durations[i]
        longer = max(longest, dur)
        full = max_batch_size is not None and len(current) >= max_batch_size
        if current and (longer * (len(current) + 1) > max_batch_duration or full):
            batches.append(current)
            current, members, longer = [], set(), dur
            queue.extendleft(reversed(waiting))
            waiting = []
        current.append(i)
        members.add(i)
        longest = longer
    if current:
        batches.append(current)
    return batches


def sorted_window_batches(
    order: np.ndarray,
    durations: np.ndarray,
    max_batch_duration: float,
    window: int,
    max_batch_size: int | None = None,
) -> list[list[int]]:
    """Batches of ``order``, sorted by duration inside consecutive windows of ``window`` items.

    Each window is sorted (stable) and packed by :func:`pack_batches`. Its
    last batch, the part of the window that did not fill a batch, is held
    back; the held-back items of all windows, in their order, go through
    windows of the same size again, until they fit in one window, which is
    packed whole. An epoch thus ends with one partial batch instead of one per
    window, and a held-back item still meets only the items of a random window.

    Example
    -------
    Windows of 4 items, 8 s of padded audio per batch. The windows' last
    batches, [1] (4 s) and [4] (3.5 s), become one full batch:

    >>> durations = np.array([2.5, 4.0, 1.0, 2.0, 3.5, 0.5, 2.25, 1.5])
    >>> sorted_window_batches(np.arange(8), durations, 8.0, window=4)
    [[2, 3, 0], [5, 7, 6], [4, 1]]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 item, got {window}")
    batches: list[list[int]] = []
    order = np.asarray(order)
    while len(order):
        last_pass = len(order) <= window
        held_back: list[int] = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            packed = pack_batches(
                chunk[np.argsort(durations[chunk], kind="stable")],
                durations,
                max_batch_duration,
                max_batch_size,
            )
            if not last_pass:
                held_back.extend(packed.pop())
            batches.extend(packed)
        if len(held_back) == len(order):  # no window filled a batch: pack them all at once
            window = len(order)
        order = np.asarray(held_back)
    return batches


class BalancedDurationBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices: language re-balanced, filled by audio duration.

    Parameters
    ----------
    durations : sequence of float
        Duration in seconds of each dataset item.
    languages : sequence of str
        Language of each item.
    max_batch_duration : float
        Budget in seconds of *padded* audio per batch (longest item x count).
        An item longer than the budget gets a batch of its own.
    alpha : float
        Re-balancing exponent (1.0: natural distribution, no re-sampling).
    max_batch_size : int, optional
        Upper bound on the number of items per batch.
    seed : int
        Base seed; epoch ``e`` uses ``seed + e``, so runs are reproducible and a
        resumed epoch replays the same batches.
    num_replicas, rank : int, optional
        DDP world size and rank (read from ``torch.distributed`` by default).
    sort_window_batches : int or None
        The drawn epoch is sorted by duration inside windows of this many
        batches' worth of utterances (see :func:`sorted_window_batches`);
        ``None`` sorts the whole epoch (least padding, the same batches every
        epoch when nothing is re-sampled). ``docs/benchmarks/cpu-padding.md``
        measures padding and randomness against it.

    Example
    -------
    >>> s = BalancedDurationBatchSampler([1.0, 2.0, 3.0, 4.0], ["a", "a", "b", "b"],
    ...                                  max_batch_duration=6.0, alpha=1.0)
    >>> sorted(i for b in s for i in b)
    [0, 1, 2, 3]
    """

    def __init__(
        self,
        durations: Sequence[float],
        languages: Sequence[str],
        max_batch_duration: float,
        alpha: float = 0.5,
        max_batch_size: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        sort_window_batches: int | None = SORT_WINDOW_BATCHES,
    ):
        if max_batch_duration <= 0:
            raise ValueError(f"max_batch_duration must be positive, got {max_batch_duration}")
        self.durations = np.asarray(durations, dtype=np.float64)
        self.languages = list(languages)
        self.ratios = language_sampling_ratios(self.durations, self.languages, alpha)
        self.max_batch_duration = float(max_batch_duration)
        self.max_batch_size = max_batch_size
        if sort_window_batches is not None and sort_window_batches < 1:
            raise ValueError(f"sort_window_batches must be >= 1 or None, got {sort_window_batches}")
        self.sort_window_batches = sort_window_batches
        self.seed = seed
        self.epoch = 0
        self.num_replicas, self.rank = _dist_info(num_replicas, rank)
        codes = np.asarray(self.languages)
        self._by_lang = {lang: np.flatnonzero(codes == lang) for lang in self.ratios}
        self._batches: list[list[int]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches are drawn (called by SpeechBrain's ``fit``)."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._batches = None

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        drawn = []
        for lang, idx in self._by_lang.items():
            ratio = self.ratios[lang]["ratio"]
            whole, frac = int(math.floor(ratio)), ratio - math.floor(ratio)
            drawn.extend([idx] * whole)
            extra = int(round(frac * len(idx)))
            if extra:
                drawn.append(rng.choice(idx, size=extra, replace=False))
        out = np.concatenate(drawn)  # never empty: some language has ratio >= 1
        return out[rng.permutation(len(out))]

    def _window_items(self, drawn: int) -> int:
        """Utterances per sort window: ``sort_window_batches`` batches of median items."""
        if self.sort_window_batches is None:
            return drawn
        median = max(float(np.median(self.durations)), 1e-3)
        return max(1, int(self.sort_window_batches * self.max_batch_duration / median))

    def _global_batches(self) -> list[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        order = self._draw(rng)
        batches = sorted_window_batches(
            order,
            self.durations,
            self.max_batch_duration,
            self._window_items(len(order)),
            self.max_batch_size,
        )
        return [batches[i] for i in rng.permutation(len(batches))]

    def _rank_batches(self) -> list[list[int]]:
        if self._batches is None:
            batches = self._global_batches()
            per_rank = len(batches) // self.num_replicas
            if per_rank == 0:
                raise ValueError(
                    f"{len(batches)} batches cannot be shared by {self.num_replicas} ranks: "
                    "lower max_batch_duration or add data"
                )
            self._batches = batches[self.rank : per_rank * self.num_replicas : self.num_replicas]
        return self._batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._rank_batches()

    def __len__(self) -> int:
        return len(self._rank_batches())

    def epoch_seconds(self) -> float:
        """Audio (seconds, unpadded) that one epoch draws over all ranks."""
        per_rank = sum(float(self.durations[b].sum()) for b in self._rank_batches())
        return per_rank * self.num_replicas

    def language_counts(self) -> Counter:
        """How many items of each language this rank sees in the current epoch."""
        return Counter(self.languages[i] for b in self._rank_batches() for i in b)


BUDGET_SCOPES = ("global", "per_gpu")


@dataclass(frozen=True)
class BatchBudget:
    """Seconds of padded audio per GPU batch and per optimizer step, from one stated budget.

    Parameters
    ----------
    seconds : float
        The budget the configuration states.
    scope : {"global", "per_gpu"}
        ``"global"``: ``seconds`` of audio per optimizer step over all GPUs and
        accumulated batches; ``"per_gpu"``: ``seconds`` per batch of one GPU.
    world_size : int
        Number of processes (GPUs).
    grad_accumulation : int
        Batches accumulated per optimizer step.

    Example
    -------
    >>> b = BatchBudget(1200, "global", world_size=2, grad_accumulation=1)
    >>> b.per_gpu_seconds, b.step_seconds
    (600.0, 1200.0)
    >>> BatchBudget(1200, "per_gpu", world_size=2, grad_accumulation=1).step_seconds
    2400.0
    """

    seconds: float
    scope: str
    world_size: int = 1
    grad_accumulation: int = 1

    @classmethod
    def for_this_run(cls, seconds: float, scope: str, grad_accumulation: int = 1) -> BatchBudget:
        """The budget over the processes ``torchrun`` started (``WORLD_SIZE``; 1 without it).

        Example
        -------
        >>> BatchBudget.for_this_run(8, "global").per_gpu_seconds  # one process
        8.0
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(seconds, scope, world_size=world_size, grad_accumulation=grad_accumulation)

    def __post_init__(self):
        if self.scope not in BUDGET_SCOPES:
            raise ValueError(
                f"batch_seconds_scope must be one of {BUDGET_SCOPES}, got {self.scope!r}"
            )
        if self.seconds <= 0 or self.world_size < 1 or self.grad_accumulation < 1:
            raise ValueError(
                "need batch_seconds > 0, world_size >= 1 and grad_accumulation >= 1, got "
                f"{self.seconds}, {self.world_size}, {self.grad_accumulation}"
            )

    @property
    def per_gpu_seconds(self) -> float:
        """Padded audio in one forward pass of one GPU."""
        if self.scope == "per_gpu":
            return float(self.seconds)
        return float(self.seconds) / (self.world_size * self.grad_accumulation)

    @property
    def step_seconds(self) -> float:
        """Padded audio behind one optimizer step, all GPUs and accumulated batches together."""
        return self.per_gpu_seconds * self.world_size * self.grad_accumulation

    def describe(
        self, steps_per_epoch: int, epochs: int, epoch_seconds: float, data_seconds: float
    ) -> str:
        """One paragraph for the log: both budgets, steps, and passes over the data.

        ``epoch_seconds`` is the audio one epoch draws (after re-balancing, all
        GPUs), ``data_seconds`` the audio of the training set.
        """
        passes = epochs * epoch_seconds / max(data_seconds, 1e-9)
        return (
            f"batch budget ({self.scope} {self.seconds:g} s): {self.per_gpu_seconds:g} s of "
            f"padded audio per GPU batch, {self.step_seconds:g} s per optimizer step "
            f"({self.world_size} GPU(s) x {self.grad_accumulation} accumulated); "
            f"{steps_per_epoch} steps per epoch x {epochs} epochs = "
            f"{steps_per_epoch * epochs} steps, {passes:.2f} passes over the "
            f"{data_seconds / 3600:.2f} h of training audio"
        )
