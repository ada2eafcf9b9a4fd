"""A SpeechBrain checkpointer whose checkpoints appear whole or not at all.

SpeechBrain's ``Checkpointer.save_checkpoint`` writes ``CKPT.yaml`` first and
the parameter files after it, inside the final ``CKPT+...`` folder. A crash
while those files are written leaves a folder that is listed as a valid
checkpoint, and a resumed run loads truncated files.

:class:`AtomicCheckpointer` writes the whole checkpoint into a hidden
temporary folder, flushes it to disk, then renames it to its final name in one
``os.rename``: a checkpoint is either complete or invisible. Temporary folders
left by a crash are removed at the next start.
"""

from __future__ import annotations

import logging
import pathlib
import shutil

from speechbrain.utils.checkpoints import Checkpoint, Checkpointer
from speechbrain.utils.distributed import ddp_barrier, if_main_process

from sense.io import fsync_tree, replace_folder

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"


class AtomicCheckpointer(Checkpointer):
    """``Checkpointer`` that saves into a temporary folder and renames it.

    Same arguments and behaviour as
    :class:`speechbrain.utils.checkpoints.Checkpointer`.

    Example
    -------
    >>> import tempfile, torch
    >>> ckpt = AtomicCheckpointer(tempfile.mkdtemp(), {"lin": torch.nn.Linear(2, 2)})
    >>> saved = ckpt.save_checkpoint()
    >>> saved.path.name.startswith("CKPT+"), sorted(saved.paramfiles)
    (True, ['lin'])
    """

    def __init__(self, checkpoints_dir, *args, **kwargs):
        super().__init__(checkpoints_dir, *args, **kwargs)
        if if_main_process():
            self.remove_partial_checkpoints()

    def remove_partial_checkpoints(self) -> list[pathlib.Path]:
        """Delete temporary folders left by a save that did not finish."""
        removed = []
        for path in pathlib.Path(self.checkpoints_dir).glob(f"{TMP_PREFIX}*"):
            logger.warning("Removing partial checkpoint %s (an interrupted save)", path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        return removed

    # SpeechBrain asks these two for the folder to write into: hand it a
    # temporary sibling of the final name, which listing never picks up.
    def _new_checkpoint_dirpath(self):
        final = super()._new_checkpoint_dirpath()
        return final.with_name(TMP_PREFIX + final.name)

    def _custom_checkpoint_dirpath(self, name):
        final = super()._custom_checkpoint_dirpath(name)
        return final.with_name(TMP_PREFIX + final.name)

    def save_checkpoint(self, meta=None, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """Save every recoverable, then publish the checkpoint with one rename."""
        # SpeechBrain would log the temporary folder: log the final one below instead
        saved = super().save_checkpoint(
            meta=meta or {}, end_of_epoch=end_of_epoch, name=name, verbosity=logging.DEBUG
        )
        final = None
        if if_main_process():
            tmp = pathlib.Path(saved.path)
            final = tmp.with_name(tmp.name[len(TMP_PREFIX) :])
            fsync_tree(tmp)
            replace_folder(tmp, final)  # a custom name saved again is replaced whole
            saved = Checkpoint(
                final,
                saved.meta,
                {k: final / pathlib.Path(v).name for k, v in saved.paramfiles.items()},
            )
            kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
            logger.log(verbosity, "Saved an %s checkpoint in %s", kind, final)
        ddp_barrier()
        return saved
