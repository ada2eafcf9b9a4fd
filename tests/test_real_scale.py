"""The real-scale path: sharded teacher cache, one teacher spec, warm-up, batch budget."""

import os
import subprocess
import sys

import numpy as np
import pytest
import speechbrain as sb
import torch
from helpers.ddp_cache_worker import items as worker_items
from helpers.ports import free_port

from sense.distill import DistillationBrain, build_teacher_cache
from sense.export import export_model
from sense.inference import SENSE
from sense.lobes.speech import HFSpeechEncoder
from sense.lobes.text import TeacherSpec
from sense.losses import CosineDistanceLoss
from sense.nnet.pooling import AttentivePooling
from sense.teacher_cache import TeacherCache
from sense.testing.tiny import build_tiny_bert

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TEACHER_ATOL = 1e-3


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO, os.path.join(REPO, "tests"), env.get("PYTHONPATH", "")]
    )
    return env


def test_torchrun_ranks_share_the_teacher_cache(tiny_xlmr, tmp_path):
    folder, report = str(tmp_path / "ddp"), str(tmp_path / "report")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={free_port()}",
            os.path.join(REPO, "tests", "helpers", "ddp_cache_worker.py"),
            folder,
            tiny_xlmr,
            report,
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = [int(open(os.path.join(report, f"rank{r}.txt")).read()) for r in (0, 1)]
    assert sum(counts) == len(worker_items()) and counts == [20, 20]
    assert not [n for n in os.listdir(folder) if n.startswith("shard-")]  # merged, removed
    single = TeacherCache.build(
        str(tmp_path / "single"),
        worker_items(),
        TeacherSpec(tiny_xlmr, kind="hf", pooling="cls").load(),
        progress=False,
    )
    sharded = TeacherCache.open(folder)
    ids = list(worker_items())
    np.testing.assert_array_equal(sharded.get_batch(ids).numpy(), single.get_batch(ids).numpy())
    assert sharded.teacher_id == single.teacher_id


def _manifest(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("ID,duration,wav,language,transcript\n")
        for uid, text in rows.items():
            f.write(f"{uid},1.0,/nowhere/{uid}.flac,fr,{text}\n")
    return path


def test_two_teachers_share_a_prepared_folder(tiny_xlmr, tiny_bert, tmp_path):
    manifest = _manifest(str(tmp_path / "train.csv"), {"a": "le chat dort", "b": "il pleut"})
    root = str(tmp_path / "teacher_cache")
    sense_spec = TeacherSpec(tiny_xlmr, kind="hf", pooling="cls")
    samu_spec = TeacherSpec(tiny_bert, kind="hf", pooling="pooler", max_length=16)
    first = build_teacher_cache(sense_spec, [manifest], root)
    second = build_teacher_cache(samu_spec, [manifest], root)
    assert first.folder != second.folder
    for spec, cache in ((sense_spec, first), (samu_spec, second)):
        again = TeacherCache.open(os.path.join(root, spec.key))
        again.verify({"a": "le chat dort", "b": "il pleut"})
        torch.testing.assert_close(again.get_batch(["a", "b"]), cache.get_batch(["a", "b"]))


@pytest.mark.parametrize("pooling", ["cls", "pooler"])
def test_exported_model_embeds_text_as_its_training_targets(
    pooling, tiny_w2v_bert, tiny_xlmr, tmp_path
):
    """A short max_length truncates: guessing it again at load time would land elsewhere."""
    source = tiny_xlmr if pooling == "cls" else build_tiny_bert(str(tmp_path / "bert"))
    spec = TeacherSpec(source, kind="hf", pooling=pooling, max_length=6, dtype="float32")
    texts = {"u1": "une phrase bien plus longue que six jetons de texte", "u2": "court"}
    cache = build_teacher_cache(
        spec, [_manifest(str(tmp_path / "m.csv"), texts)], str(tmp_path / "cache")
    )
    encoder = HFSpeechEncoder(tiny_w2v_bert)
    pool = AttentivePooling(encoder.output_dim, output_dim=cache.dim)
    export_model(str(tmp_path / "model"), encoder, pool, teacher=spec)
    model = SENSE.from_hparams(source=str(tmp_path / "model"), device="cpu")
    assert model.hparams.teacher == spec
    torch.testing.assert_close(
        model.encode_text(list(texts.values())),
        cache.get_batch(list(texts)),
        atol=TEACHER_ATOL,
        rtol=0,
    )


class _Batch:
    def __init__(self, wavs, targets):
        self.sig = (wavs, torch.ones(wavs.shape[0]))
        self.teacher_emb = sb.dataio.batch.PaddedData(targets, torch.ones(len(targets)))
        self.language = ["fr"] * len(targets)
        self.id = [str(i) for i in range(len(targets))]

    def to(self, device):
        return self


def test_warm_up_gives_the_encoder_no_gradient(tiny_w2v_bert, tmp_path):
    torch.manual_seed(0)
    encoder = HFSpeechEncoder(tiny_w2v_bert, apply_spec_augment=False)
    pooling = AttentivePooling(encoder.output_dim)
    hparams = {
        "loss": CosineDistanceLoss(),
        "encoder_opt_class": lambda p: torch.optim.Adam(p, lr=1e-3),
        "pooling_opt_class": lambda p: torch.optim.Adam(p, lr=1e-3),
        "encoder_freeze_steps": 2,
        "train_logger": sb.utils.train_logger.FileTrainLogger(str(tmp_path / "log.txt")),
    }
    brain = DistillationBrain(
        modules={"encoder": encoder, "pooling": pooling},
        hparams=hparams,
        run_opts={"device": "cpu"},
    )
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN)
    batch = _Batch(torch.randn(2, 16000), torch.nn.functional.normalize(torch.randn(2, 32), dim=-1))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    for step in range(1, 4):
        brain.modules.train()
        held = "encoder" not in brain.freeze_optimizers(brain.optimizers_dict)
        assert held == (step <= 2)
        brain.fit_batch(batch)
        grads = [p.grad for p in encoder.parameters() if p.requires_grad]
        if step <= 2:
            assert all(g is None for g in grads), f"the held encoder got a gradient at step {step}"
            assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    adam = brain.optimizers_dict["encoder"]
    assert max(int(s["step"]) for s in adam.state.values()) == 1  # the one step after warm-up
    assert max(int(s["step"]) for s in brain.optimizers_dict["pooling"].state.values()) == 3


@pytest.mark.parametrize("model", ["w2v_bert", "wav2vec2"])
def test_a_bfloat16_cast_encoder_computes_features_in_float32(model, request):
    """``.to(torch.bfloat16)`` on the encoder: the front-end stays float32, the model gets bf16."""
    encoder = HFSpeechEncoder(request.getfixturevalue(f"tiny_{model}")).eval()
    wavs = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        reference, lens = encoder(wavs, torch.tensor([1.0, 0.7]))
        encoder.to(torch.bfloat16)
        frames, half_lens = encoder(wavs, torch.tensor([1.0, 0.7]))
    assert frames.dtype == torch.bfloat16 and torch.equal(lens, half_lens)
    if model == "w2v_bert":
        assert encoder.fbank.mel_filters.dtype == torch.bfloat16  # cast, yet unused as such
    error = (frames.float() - reference).abs().max() / reference.abs().max()
    assert error < 0.1, error


def test_export_takes_the_checkpoint_with_the_lowest_validation_loss(tiny_w2v_bert, tmp_path):
    from sense.checkpoints import AtomicCheckpointer

    encoder = HFSpeechEncoder(tiny_w2v_bert)
    pooling = AttentivePooling(encoder.output_dim)
    checkpointer = AtomicCheckpointer(
        str(tmp_path / "save"), {"encoder": encoder, "pooling": pooling}
    )
    brain = DistillationBrain(
        modules={"encoder": encoder, "pooling": pooling},
        hparams={"encoder_opt_class": None, "pooling_opt_class": None},
        run_opts={"device": "cpu"},
        checkpointer=checkpointer,
    )
    weights = {}
    for loss in (0.7, 0.2, 0.5):  # the best is saved neither first nor last
        with torch.no_grad():
            pooling.attention.weight.fill_(loss)
        checkpointer.save_checkpoint(meta={"loss": loss})
        weights[loss] = pooling.attention.weight.clone()
    folder = brain.export(str(tmp_path / "model"), teacher=None)
    exported = torch.load(os.path.join(folder, "pooling.ckpt"), map_location="cpu")
    torch.testing.assert_close(exported["attention.weight"], weights[0.2])


def test_encode_text_is_centred_like_the_training_targets(tiny_w2v_bert, tiny_xlmr, tmp_path):
    spec = TeacherSpec(tiny_xlmr, kind="hf", pooling="cls", dtype="float32")
    teacher = spec.load()
    texts = ["le chat dort", "il pleut sur la ville", "un deux trois"]
    raw = teacher(texts)
    center = raw.mean(0) + 0.3  # as teacher_mean gives it: the training targets' mean
    encoder = HFSpeechEncoder(tiny_w2v_bert)
    pool = AttentivePooling(encoder.output_dim, output_dim=raw.shape[1])
    export_model(str(tmp_path / "m"), encoder, pool, teacher=spec, teacher_center=center)
    model = SENSE.from_hparams(source=str(tmp_path / "m"), device="cpu")
    expected = torch.nn.functional.normalize(raw - center, dim=-1)
    torch.testing.assert_close(model.encode_text(texts), expected, atol=1e-5, rtol=0)


def test_per_language_validation_r1(tiny_w2v_bert):
    """Each language's utterances retrieve their own targets; a mean over languages."""
    encoder = HFSpeechEncoder(tiny_w2v_bert)
    brain = DistillationBrain(
        modules={"encoder": encoder, "pooling": AttentivePooling(encoder.output_dim)},
        hparams={},
        run_opts={"device": "cpu"},
    )
    brain.on_stage_start(sb.Stage.VALID)
    targets = torch.nn.functional.normalize(torch.randn(6, 32), dim=-1)
    student = targets.clone()
    student[4], student[5] = targets[5], targets[4]  # ru swapped: R@1 0 in ru
    brain._valid_store["student"].append(student)
    brain._valid_store["teacher"].append(targets)
    brain._valid_store["language"].extend(["fr", "fr", "de", "de", "ru", "ru"])
    stats = brain._retrieval_stats()
    assert stats == pytest.approx({"R@1_de": 1.0, "R@1_fr": 1.0, "R@1_ru": 0.0, "R@1": 2 / 3})


def test_bf16_autocast_training_step_on_the_cpu(tiny_w2v_bert, tmp_path):
    """``--precision=bf16`` runs where it can on a CPU machine: autocast, float32 loss."""
    encoder = HFSpeechEncoder(tiny_w2v_bert, apply_spec_augment=False)
    pooling = AttentivePooling(encoder.output_dim)
    brain = DistillationBrain(
        modules={"encoder": encoder, "pooling": pooling},
        hparams={
            "loss": CosineDistanceLoss(),
            "encoder_opt_class": lambda p: torch.optim.Adam(p, lr=1e-3),
            "pooling_opt_class": lambda p: torch.optim.Adam(p, lr=1e-3),
            "train_logger": sb.utils.train_logger.FileTrainLogger(str(tmp_path / "log.txt")),
        },
        run_opts={"device": "cpu", "precision": "bf16"},
    )
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN)
    target = torch.nn.functional.normalize(torch.randn(2, 32), dim=-1)
    batch = _Batch(torch.randn(2, 16000) * 0.1, target)
    with brain.training_ctx:
        emb = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert emb.dtype == torch.bfloat16  # the forward ran under bf16 autocast
    before = pooling.attention.weight.clone()
    loss = brain.fit_batch(batch)
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert not torch.equal(before, pooling.attention.weight)


def test_no_device_read_between_the_loss_and_backward(tiny_w2v_bert, tmp_path, monkeypatch):
    """A read of a device value there makes the host wait for the whole forward pass."""
    encoder = HFSpeechEncoder(tiny_w2v_bert, apply_spec_augment=False)
    brain = DistillationBrain(
        modules={"encoder": encoder, "pooling": AttentivePooling(encoder.output_dim)},
        hparams={
            "loss": CosineDistanceLoss(),
            "encoder_opt_class": lambda p: torch.optim.Adam(p, lr=1e-3),
            "pooling_opt_class": lambda p: torch.optim.Adam(p, lr=1e-3),
            "train_logger": sb.utils.train_logger.FileTrainLogger(str(tmp_path / "log.txt")),
        },
        run_opts={"device": "cpu"},
    )
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN)
    events = []
    for name in ("__bool__", "item", "tolist", "__float__"):
        method = getattr(torch.Tensor, name)

        def read(self, *args, _method=method, _name=name, **kwargs):
            events.append(_name)
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)
    objectives, backward = brain.compute_objectives, torch.Tensor.backward

    def compute_objectives(*args, **kwargs):
        loss = objectives(*args, **kwargs)
        events.append("loss")
        return loss

    def traced_backward(self, *args, **kwargs):
        events.append("backward")
        return backward(self, *args, **kwargs)

    monkeypatch.setattr(brain, "compute_objectives", compute_objectives)
    monkeypatch.setattr(torch.Tensor, "backward", traced_backward)
    target = torch.nn.functional.normalize(torch.randn(2, 32), dim=-1)
    loss = brain.fit_batch(_Batch(torch.randn(2, 16000), target))
    between = events[events.index("loss") + 1 : events.index("backward")]
    assert between == []
    # the check still runs, on the host copy of the loss
    brain.step, brain.nonfinite_count, brain.nonfinite_patience = 1, 0, 0
    assert brain.update_average(loss, 0.0) == pytest.approx(float(loss))
    with pytest.raises(ValueError, match="Loss is not finite and patience is exhausted"):
        brain.update_average(torch.tensor(float("nan")), 0.0)
