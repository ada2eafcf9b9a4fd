"""End-to-end tests of recipes/CommonVoice/SENSE on a tiny Common Voice release."""

import os
import re

import pytest
import torch
from cv_fixture import checkpoints, run_recipe
from cv_fixture import recipe_args as _args

from sense.prepare import PreparationReport, read_manifest

pytestmark = pytest.mark.slow


def _valid_losses(out):
    with open(os.path.join(out, "train_log.txt"), encoding="utf-8") as f:
        return [float(m) for m in re.findall(r"valid loss: ([0-9.e+-]+)", f.read())]


@pytest.fixture(scope="module")
def prepared_then_trained(cv_release, tiny_w2v_bert, tiny_xlmr, tmp_path_factory):
    """``--prepare_only`` (preparation and teacher cache), then the training launch."""
    cv, _ = cv_release
    out = str(tmp_path_factory.mktemp("run"))
    args = _args(cv, out, tiny_w2v_bert, tiny_xlmr, "--number_of_epochs=2")
    prepare = run_recipe([*args, "--prepare_only"])
    assert prepare.returncode == 0, prepare.stdout[-3000:] + prepare.stderr[-3000:]
    save = os.path.join(out, "save")
    after_prepare = sorted(os.listdir(out)) + (os.listdir(save) if os.path.isdir(save) else [])
    train = run_recipe(args)
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


def test_every_good_row_keeps_its_text_and_is_trained_on(cv_release, trained):
    """Hostile transcripts ($5, ${x}, quotes, commas, emoji, RTL) reach the manifests
    exactly as released, and the training steps take them."""
    _, info = cv_release
    kept = {}
    for split in ("train", "dev"):
        manifest = read_manifest(os.path.join(trained, "data", f"{split}.csv"))
        assert len(manifest) == info["good"][split], split
        kept.update((r["ID"], r["transcript"]) for r in manifest)
    assert kept == info["transcripts"]
    with open(os.path.join(trained, "batches", "rank0.txt"), encoding="utf-8") as f:
        trained_on = set(f.read().split())
    assert {"fr_common_voice_fr_1003", "ru_common_voice_ru_1004"} <= trained_on


def test_loss_falls_and_both_parts_learn(trained):
    losses = _valid_losses(trained)
    assert len(losses) == 2 and losses[1] < losses[0]
    first, second = checkpoints(trained)
    for name in ("pooling", "encoder"):
        a = torch.load(os.path.join(first, f"{name}.ckpt"), map_location="cpu")
        b = torch.load(os.path.join(second, f"{name}.ckpt"), map_location="cpu")
        changed = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
        assert changed, f"{name} did not change between epochs"
    # both optimizers are checkpointed, with a state; the encoder's Adam is the fused one
    fused = {}
    for name in ("encoder_optimizer", "pooling_optimizer"):
        state = torch.load(os.path.join(second, f"{name}.ckpt"), map_location="cpu")
        assert state["state"], name
        fused[name] = state["param_groups"][0].get("fused")
    assert fused == {"encoder_optimizer": True, "pooling_optimizer": None}


def test_exported_folder_loads(trained, tmp_path):
    from sense.inference import SENSE

    model = SENSE.from_hparams(source=os.path.join(trained, "model"), savedir=str(tmp_path))
    wav = os.path.join(trained, "data", "wavs", "fr", "common_voice_fr_1000.flac")
    emb = model.encode_file(wav)
    assert emb.shape == (32,) and torch.isfinite(emb).all()
    # the recording at 16 kHz through the exported encoder and pooling, L2-normalised
    # (the folder's normalize: true)
    import soundfile as sf
    import torchaudio

    audio, rate = sf.read(wav, dtype="float32")
    audio = torchaudio.functional.resample(torch.from_numpy(audio), rate, 16000)
    with torch.no_grad():
        frames, lens = model.mods.encoder(audio[None], torch.ones(1))
        pooled = model.mods.pooling(frames, lens)[0][0]
    assert model.hparams.normalize is True
    torch.testing.assert_close(
        emb, torch.nn.functional.normalize(pooled, dim=0), atol=1e-5, rtol=1e-4
    )


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
    proc = run_recipe(args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert os.path.isfile(os.path.join(out, "model", "pooling.ckpt"))
    pooling = torch.load(os.path.join(out, "model", "pooling.ckpt"), map_location="cpu")
    assert pooling["projection.weight"].shape == (32, 32)
