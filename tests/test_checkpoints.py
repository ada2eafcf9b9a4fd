import os

import pytest
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from sense.checkpoints import TMP_PREFIX, AtomicCheckpointer


@register_checkpoint_hooks
class Exploding:
    """A recoverable whose save fails half-way, like a crash during a save."""

    def __init__(self):
        self.explode = False

    @mark_as_saver
    def save(self, path):
        with open(path, "w") as f:
            f.write("partial")
        if self.explode:
            raise KeyboardInterrupt("killed during save")

    @mark_as_loader
    def load(self, path, end_of_epoch):
        pass


def test_a_crash_during_save_leaves_no_valid_looking_checkpoint(tmp_path):
    model = torch.nn.Linear(3, 3)
    bomb = Exploding()
    ckpt = AtomicCheckpointer(tmp_path, {"model": model, "zbomb": bomb})
    good = ckpt.save_checkpoint(meta={"n": 1})
    assert good.path.name.startswith("CKPT+") and (good.path / "model.ckpt").exists()
    saved_weight = model.weight.detach().clone()

    with torch.no_grad():
        model.weight.add_(1.0)
    bomb.explode = True
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(meta={"n": 2})
    # only the complete checkpoint is listed, and it is the one recovered
    listed = ckpt.list_checkpoints()
    assert [c.meta["n"] for c in listed] == [1]
    assert ckpt.recover_if_possible().meta["n"] == 1
    assert torch.equal(model.weight, saved_weight)
    # the partial folder is removed at the next start
    assert any(p.startswith(TMP_PREFIX) for p in os.listdir(tmp_path))
    AtomicCheckpointer(tmp_path, {"model": model})
    assert not any(p.startswith(TMP_PREFIX) for p in os.listdir(tmp_path))


def test_keep_only_and_named_checkpoints(tmp_path):
    model = torch.nn.Linear(2, 2)
    ckpt = AtomicCheckpointer(tmp_path, {"model": model})
    for loss in (3.0, 1.0, 2.0):
        ckpt.save_and_keep_only(meta={"loss": loss}, min_keys=["loss"], num_to_keep=1)
    kept = ckpt.list_checkpoints()
    assert sorted(c.meta["loss"] for c in kept) == [1.0, 2.0]  # best and most recent
    named = ckpt.save_checkpoint(name="final")
    again = ckpt.save_checkpoint(name="final")
    assert named.path == again.path and again.path.is_dir()


def test_the_log_names_the_final_checkpoint_folder(tmp_path, caplog):
    ckpt = AtomicCheckpointer(tmp_path, {"model": torch.nn.Linear(2, 2)})
    with caplog.at_level("INFO"):
        saved = ckpt.save_checkpoint()
    messages = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert f"Saved an end-of-epoch checkpoint in {saved.path}" in messages
    assert not any(TMP_PREFIX in m for m in messages)
