"""Which rank embeds what when ``torchrun`` builds an index: whole batches, balanced by duration.

The audio files are cut into the batches of a one-process run
(:func:`audio_batches`), so a batch is computed alike whichever rank embeds
it and the index is the same bit for bit. :func:`plan_shares` deals out the
unfinished batches by their seconds of audio, and the unfinished text files
by their sentences, longest first (:func:`sense.distributed.share_by_cost`).
Each rank reports the files it skipped by batch, and
:func:`failures_in_batch_order` lists them as one process would have.

Example
-------
>>> batches = audio_batches(["a", "b", "c"], batch_size=2)
>>> shares = plan_shares(list(enumerate(batches)), {"t.txt": 2}, {"a": 1, "b": 1, "c": 3}.get, 2)
>>> [(share.audio, share.text) for share in shares]
[([(1, ['c'])], ['t.txt']), ([(0, ['a', 'b'])], [])]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sense.distributed import share_by_cost

#: A batch of audio: its index among the batches of a one-process run, and its files to embed.
Batch = tuple[int, list[str]]


@dataclass
class Share:
    """One rank's work: ``audio`` batches (index, files) and ``text`` files, in input order."""

    audio: list[Batch] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def audio_files(self) -> list[str]:
        """Every audio file of the share, in batch order.

        Example
        -------
        >>> Share([(0, ["a", "b"]), (3, ["c"])]).audio_files()
        ['a', 'b', 'c']
        """
        return [path for _, paths in self.audio for path in paths]


def audio_batches(audio: Sequence[str], batch_size: int) -> list[list[str]]:
    """The batches of files of a one-process run: ``batch_size`` files at a time, in order.

    Example
    -------
    >>> audio_batches(["a", "b", "c"], 2)
    [['a', 'b'], ['c']]
    """
    return [list(audio[start : start + batch_size]) for start in range(0, len(audio), batch_size)]


def plan_shares(
    batches: Sequence[Batch],
    text: Mapping[str, int],
    duration: Callable[[str], float],
    world_size: int,
) -> list[Share]:
    """Each rank's share of the unfinished work.

    Parameters
    ----------
    batches : sequence of (int, list of str)
        The unfinished audio batches: index and files to embed.
    text : mapping
        ``path -> number of sentences`` of the unfinished text files.
    duration : callable
        Seconds of audio of a file (not called with one rank).
    world_size : int
        How many ranks share the work.

    Returns
    -------
    list of Share
        One per rank: audio batches balanced by seconds of audio, text files by
        sentences, each greedily longest first (ties to the lower rank).

    Example
    -------
    >>> [s.audio for s in plan_shares([(0, ["a"]), (1, ["b"])], {}, {"a": 1, "b": 2}.get, 1)]
    [[(0, ['a']), (1, ['b'])]]
    """
    if world_size == 1:
        return [Share(list(batches), list(text))]
    costs = [sum(duration(path) for path in paths) for _, paths in batches]
    shares = [Share() for _ in range(world_size)]
    for share, items in zip(shares, share_by_cost(costs, world_size)):
        share.audio = [batches[i] for i in items]
    paths = list(text)
    for share, items in zip(shares, share_by_cost([text[p] for p in paths], world_size)):
        share.text = [paths[i] for i in items]
    return shares


def failures_in_batch_order(by_rank: Sequence[Mapping[int, list]]) -> list:
    """The files each rank skipped, ``{batch index: [(path, reason)]}``, as one list in batch order.

    Example
    -------
    >>> failures_in_batch_order([{2: [("c", "empty")]}, {0: [("a", "bad")], 1: []}])
    [('a', 'bad'), ('c', 'empty')]
    """
    merged = {index: failed for failures in by_rank for index, failed in failures.items()}
    return [failure for index in sorted(merged) for failure in merged[index]]


__all__ = ["Batch", "Share", "audio_batches", "failures_in_batch_order", "plan_shares"]
