"""End-to-end tests of recipes/CommonVoice/SENSE on a tiny Common Voice release."""

import os
import re
import signal

import pytest
import torch
from cv_fixture import build_common_voice, run_recipe
from cv_fixture import recipe_args as _args

from sense.checkpoints import KILL_AFTER_ENV
from sense.prepare import PreparationReport

pytestmark = pytest.mark.slow


def _train(args, **kw):
    return run_recipe(args, **kw)


def _torchrun(args):
    """The recipe on two gloo ranks (``torch.distributed.run``), on a free port."""
    return run_recipe([*args, "--distributed_backend=gloo"], nproc=2)


def _valid_losses(out):
    with open(os.path.join(out, "train_log.txt"), encoding="utf-8") as f:
        return [float(m) for m in re.findall(r"valid loss: ([0-9.e+-]+)", f.read())]


def _checkpoints(out):
    save = os.path.join(out, "save")
    return sorted(os.path.join(save, d) for d in os.listdir(save) if d.startswith("CKPT+"))


@pytest.fixture(scope="module")
def cv_release(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cv"))
    return root, build_common_voice(root)


@pytest.fixture(scope="module")
def prepared_then_trained(cv_release, tiny_w2v_bert, tiny_xlmr, tmp_path_factory):
    """``--prepare_only`` (preparation and teacher cache), then the training launch."""
    cv, _ = cv_release
    out = str(tmp_path_factory.mktemp("run"))
    args = _args(cv, out, tiny_w2v_bert, tiny_xlmr, "--number_of_epochs=2")
    prepare = _train([*args, "--prepare_only"])
    assert prepare.returncode == 0, prepare.stdout[-3000:] + prepare.stderr[-3000:]
    save = os.path.join(out, "save")
    after_prepare = sorted(os.listdir(out)) + (os.listdir(save) if os.path.isdir(save) else [])
    train = _train(args)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    return out, prepare, after_prepare, train


@pytest.fixture(scope="module")
def trained(prepared_then_trained):
    return prepared_then_trained[0]


def test_prepare_only_stops_before_training_and_the_launch_reencodes_nothing(
    prepared_then_trained,
):
    out, prepare, after_prepare, train = prepared_then_trained
    assert "model" not in after_prepare
    assert not [name for name in after_prepare if name.startswith("CKPT")]
    prepare_log = prepare.stdout + prepare.stderr
    assert re.search(r"teacher cache .*: 24 rows, 0 kept, 24 to encode", prepare_log)
    log = train.stdout + train.stderr
    assert "already prepared" in log
    assert re.search(r"teacher cache .*: 24 rows, 24 kept, 0 to encode", log), log[-3000:]
    # the budget and the passes over the data it amounts to are printed at start
    assert re.search(
        r"batch budget \(per_gpu 4 s\): 4 s of padded audio per GPU batch, 4 s per optimizer step "
        r"\(1 GPU\(s\) x 1 accumulated\); \d+ steps per epoch x 2 epochs",
        train.stdout,
    ), train.stdout[-2000:]


def test_report_lists_exactly_the_bad_rows(cv_release, trained):
    _, info = cv_release
    rows = PreparationReport.read(os.path.join(trained, "data", "preparation_report.tsv"))
    assert {r["item"]: r["reason"] for r in rows} == info["bad"]
    for split in ("train", "dev"):
        with open(os.path.join(trained, "data", f"{split}.csv"), encoding="utf-8") as f:
            assert sum(1 for _ in f) - 1 == info["good"][split], split


def test_loss_falls_and_both_parts_learn(trained):
    losses = _valid_losses(trained)
    assert len(losses) == 2 and losses[1] < losses[0]
    first, second = _checkpoints(trained)
    for name in ("pooling", "encoder"):
        a = torch.load(os.path.join(first, f"{name}.ckpt"), map_location="cpu")
        b = torch.load(os.path.join(second, f"{name}.ckpt"), map_location="cpu")
        changed = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
        assert changed, f"{name} did not change between epochs"
    # both optimizers are checkpointed, with a state
    for name in ("encoder_optimizer", "pooling_optimizer"):
        state = torch.load(os.path.join(second, f"{name}.ckpt"), map_location="cpu")
        assert state["state"], name


def test_exported_folder_loads(trained, tmp_path):
    from sense.inference import SENSE

    model = SENSE.from_hparams(source=os.path.join(trained, "model"), savedir=str(tmp_path))
    wav = os.path.join(trained, "data", "wavs", "fr", "common_voice_fr_1000.flac")
    emb = model.encode_file(wav)
    assert emb.shape == (32,) and torch.isfinite(emb).all()


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
    proc = _train(_args(cv, reference, tiny_w2v_bert, tiny_xlmr, *common))
    assert proc.returncode == 0, proc.stderr[-3000:]
    all_batches = _batch_lines(reference)
    assert len(all_batches) >= 8

    out = str(tmp_path / "killed")
    args = _args(cv, out, tiny_w2v_bert, tiny_xlmr, *common)
    # the run kills itself (SIGKILL) right after its first intra-epoch checkpoint
    job = run_recipe(args, env={KILL_AFTER_ENV: "1"})
    assert job.returncode == -signal.SIGKILL, job.stderr[-3000:]
    (ckpt,) = _checkpoints(out)
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

    proc = _train(args)
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


def test_samu_xlsr_setting_trains(cv_release, tiny_wav2vec2, tiny_bert, tmp_path):
    cv, _ = cv_release
    out = str(tmp_path / "samu")
    args = [
        "hparams/train_samu_xlsr.yaml",
        f"--data_folder={cv}",
        f"--output_folder={out}",
        f"--student_source={tiny_wav2vec2}",
        f"--teacher_source={tiny_bert}",
        "--encoder_dim=32",
        "--teacher_dim=32",
        "--number_of_epochs=1",
        "--encoder_freeze_steps=2",
        "--batch_seconds=4",
        "--prepare_workers=1",
        "--num_workers=0",
        "--device=cpu",
    ]
    proc = _train(args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert os.path.isfile(os.path.join(out, "model", "pooling.ckpt"))
    pooling = torch.load(os.path.join(out, "model", "pooling.ckpt"), map_location="cpu")
    assert pooling["projection.weight"].shape == (32, 32)


def test_torchrun_two_ranks_train_on_different_data(cv_release, tiny_w2v_bert, tiny_xlmr, tmp_path):
    cv, _ = cv_release
    out = str(tmp_path / "ddp")
    global_budget = ["--batch_seconds_scope=global", "--batch_seconds=8"]
    proc = _torchrun(
        _args(cv, out, tiny_w2v_bert, tiny_xlmr, "--number_of_epochs=1", *global_budget)
    )
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
    assert os.path.isfile(os.path.join(out, "model", "hyperparams.yaml"))


def test_torchrun_with_the_demo_head(cv_release, tiny_w2v_bert, tmp_path):
    """The demo's batch-normalised head under DDP: SpeechBrain turns every torch
    batch norm into SyncBatchNorm, which fails on CPU; ours must stay per rank."""
    cv, _ = cv_release
    out = str(tmp_path / "ddp_demo")
    args = [
        "hparams/train_demo.yaml",
        f"--data_folder={cv}",
        f"--output_folder={out}",
        f"--student_source={tiny_w2v_bert}",
        "--encoder_dim=32",
        "--languages_file=[fr, de, ru]",
        "--batch_seconds=4",
        "--number_of_epochs=1",
        "--prepare_workers=1",
        "--device=cpu",
    ]
    proc = _torchrun(args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 s of padded audio per GPU batch, 8 s per optimizer step (2 GPU(s)" in proc.stdout
    head = torch.load(os.path.join(out, "model", "pooling.ckpt"))
    assert head["norm.num_batches_tracked"] > 0
