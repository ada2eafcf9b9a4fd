"""Run ``sense index`` as one torchrun rank, noting its batches; one rank may die or fail.

``python index_rank.py REPORT RANK WHAT index ARGS...``: each rank writes the
files of each batch it embeds, one line per batch, to ``REPORT/rank<k>.txt``.
Rank ``RANK`` then does ``WHAT``: ``kill-after-K`` kills it with SIGKILL, as a
crash would, once its K-th batch is recorded; ``fail-load`` makes its model
fail to load (as a GPU out of memory would); ``none`` does nothing. The
production code carries no test hook: this wraps
:meth:`sense.inference.SENSE.encode_files`, :meth:`sense.index.PartialWork.put`
and :func:`sense.cli.common.load_model` here.
"""

import os
import signal
import sys

from sense.cli import common, main
from sense.index import PartialWork
from sense.inference import SENSE

LOAD_FAILURE = "cannot load the model on this rank (a test's failure)"


def run(report: str, target: int, what: str, argv: list[str]) -> int:
    rank = int(os.environ.get("RANK", "0"))
    os.makedirs(report, exist_ok=True)
    log = os.path.join(report, f"rank{rank}.txt")
    encode, put, load = SENSE.encode_files, PartialWork.put, common.load_model
    kill_after = int(what.removeprefix("kill-after-")) if what.startswith("kill-after-") else -1
    records = 0

    def noted_encode(self, paths, **kwargs):
        with open(log, "a", encoding="utf-8") as f:
            f.write(" ".join(os.path.basename(p) for p in paths) + "\n")
        return encode(self, paths, **kwargs)

    def put_then_maybe_die(self, results):
        nonlocal records
        put(self, results)
        records += 1
        if rank == target and records == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def load_or_fail(*args, **kwargs):
        if rank == target and what == "fail-load":
            raise common.CLIError(LOAD_FAILURE)
        return load(*args, **kwargs)

    SENSE.encode_files = noted_encode
    PartialWork.put = put_then_maybe_die
    common.load_model = load_or_fail
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]))
