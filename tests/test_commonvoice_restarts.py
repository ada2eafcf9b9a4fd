"""Common Voice recipe runs that start again: a run killed mid-epoch resumes, two torchrun ranks.

Apart from tests/test_commonvoice_recipe.py so that the two files run side by side.
"""

import os
import re
import signal

import pytest
import torch
from cv_fixture import checkpoints, run_recipe
from cv_fixture import recipe_args as _args

pytestmark = pytest.mark.slow


def _torchrun(args):
    """The recipe on two gloo ranks (``torch.distributed.run``), on a free port."""
    return run_recipe([*args, "--distributed_backend=gloo"], nproc=2)


def _batch_lines(out):
    with open(os.path.join(out, "batches", "rank0.txt"), encoding="utf-8") as f:
        return [line.split() for line in f]


def test_kill_mid_epoch_and_resume(cv_release, tiny_w2v_bert, tiny_xlmr, tmp_path):
    cv, _ = cv_release
    common = [
        "--number_of_epochs=1",
        "--batch_seconds=1.5",
        "--ckpt_interval_steps=3",
        "--ckpt_interval_minutes=0",
    ]
    reference = str(tmp_path / "reference")
    proc = run_recipe(_args(cv, reference, tiny_w2v_bert, tiny_xlmr, *common))
    assert proc.returncode == 0, proc.stderr[-3000:]
    all_batches = _batch_lines(reference)
    assert len(all_batches) >= 8

    out = str(tmp_path / "killed")
    args = _args(cv, out, tiny_w2v_bert, tiny_xlmr, *common)
    # the run kills itself (SIGKILL) right after its first intra-epoch checkpoint
    job = run_recipe(args, kill_after_checkpoint=1)
    assert job.returncode == -signal.SIGKILL, job.stderr[-3000:]
    (ckpt,) = checkpoints(out)
    with open(os.path.join(ckpt, "brain.ckpt"), encoding="utf-8") as f:
        saved = dict(line.split(": ") for line in f.read().strip().splitlines())
    saved_step = int(saved["step"])
    saved_opt = {
        name: max(
            int(s["step"])
            for s in torch.load(os.path.join(ckpt, f"{name}_optimizer.ckpt"), map_location="cpu")[
                "state"
            ].values()
        )
        for name in ("encoder", "pooling")
    }
    assert saved_step == 3 and saved_step < len(all_batches)
    assert saved_opt == {"encoder": saved_step, "pooling": saved_step}
    seen_before_kill = len(_batch_lines(out))

    proc = run_recipe(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out, "train_log.txt"), encoding="utf-8") as f:
        starts = re.findall(
            r"start_optimizer_step: (\d+), start_epoch_step: (\d+) - train "
            r"encoder_state_steps: (\d+), train pooling_state_steps: (\d+)",
            f.read(),
        )
    # the resumed run reports the states it really loaded
    assert tuple(map(int, starts[-1])) == (
        saved_step,
        saved_step,
        saved_opt["encoder"],
        saved_opt["pooling"],
    )
    # and continues with the next batch of the same epoch, to the same end
    resumed = _batch_lines(out)[seen_before_kill:]
    assert resumed == all_batches[saved_step:]


def test_torchrun_two_ranks_train_on_different_data_in_sync_with_the_demo_head(
    cv_release, tiny_w2v_bert, tmp_path
):
    """Two gloo ranks: a global budget split between them, different batches on each,
    the same parameters at the end; with the demo's batch-normalised head, which
    SpeechBrain would turn into SyncBatchNorm (failing on CPU): ours stays per rank."""
    cv, _ = cv_release
    out = str(tmp_path / "ddp")
    args = [
        "hparams/train_demo.yaml",
        f"--data_folder={cv}",
        f"--output_folder={out}",
        f"--student_source={tiny_w2v_bert}",
        "--encoder_dim=32",
        "--languages_file=[fr, de, ru]",
        "--batch_seconds_scope=global",
        "--batch_seconds=8",
        "--number_of_epochs=1",
        "--prepare_workers=1",
        f"--batch_log={out}/batches",
        "--device=cpu",
    ]
    proc = _torchrun(args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 s of padded audio per GPU batch, 8 s per optimizer step (2 GPU(s)" in proc.stdout
    ranks = []
    for rank in (0, 1):
        with open(os.path.join(out, "batches", f"rank{rank}.txt"), encoding="utf-8") as f:
            ranks.append([line.split() for line in f])
    assert ranks[0] and len(ranks[0]) == len(ranks[1])  # same number of steps
    # different batches on each rank
    assert not {tuple(b) for b in ranks[0]} & {tuple(b) for b in ranks[1]}
    # and the same parameters at the end of the epoch: gradients are synchronised
    params = [open(os.path.join(out, "batches", f"rank{r}.params.txt")).read() for r in (0, 1)]
    assert params[0] and params[0] == params[1]
    head = torch.load(os.path.join(out, "model", "pooling.ckpt"))
    # per-rank batch standardisation (no SyncBatchNorm): rank 0's statistics, one update
    # per training batch (these all hold several utterances), none at validation
    assert head["norm.num_batches_tracked"] == len(ranks[0])
