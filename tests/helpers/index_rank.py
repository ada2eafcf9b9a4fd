"""Run ``sense index`` as one torchrun rank, noting its batches; one rank may die mid-way.

``python index_rank.py REPORT KILL_RANK KILL_AFTER index ARGS...``: each rank
writes the files of each batch it embeds, one line per batch, to
``REPORT/rank<k>.txt``; rank ``KILL_RANK`` kills itself with SIGKILL, as a
crash would, once its ``KILL_AFTER``-th batch is recorded (``-1``: no rank
dies). The production code carries no test hook: this wraps
:meth:`sense.inference.SENSE.encode_files` and :meth:`sense.index.PartialWork.put` here.
"""

import os
import signal
import sys

from sense.cli import main
from sense.index import PartialWork
from sense.inference import SENSE


def run(report: str, kill_rank: int, kill_after: int, argv: list[str]) -> int:
    rank = int(os.environ.get("RANK", "0"))
    os.makedirs(report, exist_ok=True)
    log = os.path.join(report, f"rank{rank}.txt")
    encode, put = SENSE.encode_files, PartialWork.put
    records = 0

    def noted_encode(self, paths, **kwargs):
        with open(log, "a", encoding="utf-8") as f:
            f.write(" ".join(os.path.basename(p) for p in paths) + "\n")
        return encode(self, paths, **kwargs)

    def put_then_maybe_die(self, results):
        nonlocal records
        put(self, results)
        records += 1
        if rank == kill_rank and records == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    SENSE.encode_files = noted_encode
    PartialWork.put = put_then_maybe_die
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]))
