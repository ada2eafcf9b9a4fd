"""Run a recipe script, killing the process right after its N-th intra-epoch checkpoint.

``python kill_after_checkpoint.py N train.py ARGS...``: SIGKILL, as a crash
would, once the N-th intra-epoch checkpoint is published, so a resume test
never races the run. The production checkpointer carries no test hook: this
wraps :meth:`sense.checkpoints.AtomicCheckpointer.save_checkpoint` here.
"""

import os
import runpy
import signal
import sys

from sense.checkpoints import AtomicCheckpointer


def main() -> None:
    wanted, script = int(sys.argv[1]), sys.argv[2]
    sys.argv = sys.argv[2:]
    save = AtomicCheckpointer.save_checkpoint
    saves = 0

    def save_then_maybe_die(self, *args, end_of_epoch=True, **kwargs):
        nonlocal saves
        saved = save(self, *args, end_of_epoch=end_of_epoch, **kwargs)
        if not end_of_epoch:
            saves += 1
            if saves == wanted:
                os.kill(os.getpid(), signal.SIGKILL)
        return saved

    AtomicCheckpointer.save_checkpoint = save_then_maybe_die
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
