"""The processes ``torchrun`` started: who this one is, talking to the others, sharing work.

:func:`joined` reads ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``), joins the process group (nccl when this rank runs on its
GPU, ``cuda:<LOCAL_RANK>``; gloo on CPU) and hands back a :class:`Ranks`
whose collectives move small Python objects. Without ``torchrun`` it is one
process and every collective is the identity: the same code runs either way.
:func:`share_by_cost` deals work out to the ranks, longest first.

Example
-------
>>> with joined("cpu", env={}) as (ranks, device):
...     ranks.world_size, device, ranks.broadcast("plan"), ranks.gather(3), ranks.all_gather(4)
(1, 'cpu', 'plan', [3], [4])
"""

from __future__ import annotations

import contextlib
import datetime
import heapq
import os
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: How long a rank waits for the others at a collective (rank 0 may fingerprint
#: and plan for a while before the first broadcast).
GROUP_TIMEOUT = datetime.timedelta(hours=2)
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Ranks:
    """This process among those of one run: ``rank`` of ``world_size``, ``local_rank`` on its node.

    Example
    -------
    >>> Ranks().is_main, Ranks(rank=1, world_size=2).is_main
    (True, False)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list | None:
        """Every rank's ``obj`` on rank 0, in rank order; ``None`` on the others."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        box = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, box, dst=0)
        return box

    def all_gather(self, obj: Any) -> list:
        """Every rank's ``obj`` on every rank, in rank order."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        box = [None] * self.world_size
        dist.all_gather_object(box, obj)
        return box

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run by rank 0 alone, its value (or its exception, raised) on every rank.

        Example
        -------
        >>> Ranks().on_main(lambda: 42)
        42
        """
        if not self.distributed:
            return fn()
        outcome, failed = None, False
        if self.is_main:
            try:
                outcome = fn()
            except Exception as err:  # the others raise it too, then all exit alike
                outcome, failed = _picklable(err), True
        outcome, failed = self.broadcast((outcome, failed))
        if failed:
            raise outcome
        return outcome

    def agree(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on every rank; if it failed on any, every rank raises the first rank's error.

        For a step that may fail on one rank alone (loading a model on its
        GPU): rank 0 then reports the error of another rank.

        Example
        -------
        >>> Ranks().agree(lambda: 1 / 0)
        Traceback (most recent call last):
        ...
        ZeroDivisionError: division by zero
        """
        try:
            value, error = fn(), None
        except Exception as err:
            value, error = None, err
        if not self.distributed:
            if error is not None:
                raise error
            return value
        errors = [e for e in self.all_gather(error and _picklable(error)) if e is not None]
        if errors:
            raise errors[0]
        return value


def _picklable(err: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        return RuntimeError(str(err))
    return err


def torchrun_ranks(env: Mapping[str, str] | None = None) -> Ranks:
    """Who this process is, from ``torchrun``'s variables (one process without them).

    Example
    -------
    >>> torchrun_ranks({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    Ranks(rank=3, world_size=4, local_rank=1)
    >>> torchrun_ranks({})
    Ranks(rank=0, world_size=1, local_rank=0)
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return Ranks()
    return Ranks(
        rank=int(env.get("RANK", "0")),
        world_size=int(env["WORLD_SIZE"]),
        local_rank=int(env.get("LOCAL_RANK", "0")),
    )


def rank_device(requested: str | None, ranks: Ranks, cuda_available: bool) -> str | None:
    """This rank's device: ``cuda`` (or none asked, with a GPU) means ``cuda:<LOCAL_RANK>``.

    One process keeps what was asked (``None``: the model's default).

    Example
    -------
    >>> two = Ranks(rank=1, world_size=2, local_rank=1)
    >>> rank_device(None, two, True), rank_device("cuda", two, True), rank_device(None, two, False)
    ('cuda:1', 'cuda:1', 'cpu')
    >>> rank_device("cuda:0", two, True), rank_device(None, Ranks(), True)
    ('cuda:0', None)
    """
    if not ranks.distributed:
        return requested
    if requested is None:
        return f"cuda:{ranks.local_rank}" if cuda_available else "cpu"
    if requested == "cuda":
        return f"cuda:{ranks.local_rank}"
    return requested


@contextlib.contextmanager
def joined(
    requested_device: str | None = None, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Ranks, str | None]]:
    """``(ranks, device)`` of this process, in the process group while inside.

    Under ``torchrun`` the group is joined (nccl on a GPU, gloo on CPU) and
    left on the way out; a group already joined (by the caller) is used as is.
    """
    ranks = torchrun_ranks(env)
    if not ranks.distributed:
        yield ranks, requested_device
        return
    import torch
    import torch.distributed as dist

    device = rank_device(requested_device, ranks, torch.cuda.is_available())
    if dist.is_initialized():
        yield ranks, device
        return
    kwargs = {"backend": "gloo", "timeout": GROUP_TIMEOUT}
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
        kwargs.update(backend="nccl", device_id=torch.device(device))
    dist.init_process_group(**kwargs)
    try:
        yield ranks, device
    finally:
        dist.destroy_process_group()


def share_by_cost(costs: Sequence[float], world_size: int) -> list[list[int]]:
    """Deal items out to ``world_size`` ranks, the costliest first, each to the least loaded.

    Greedy longest-first: ties go to the earlier item and to the lower rank,
    so every rank computes the same shares. Returns each rank's item indices,
    in increasing order.

    Example
    -------
    >>> share_by_cost([3, 1, 4, 1, 5], 2)
    [[1, 3, 4], [0, 2]]
    """
    loads = [(0.0, rank) for rank in range(world_size)]  # a heap: (load, rank)
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for item in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, rank = heapq.heappop(loads)
        shares[rank].append(item)
        heapq.heappush(loads, (load + costs[item], rank))
    return [sorted(share) for share in shares]


__all__ = ["Ranks", "joined", "rank_device", "share_by_cost", "torchrun_ranks"]
