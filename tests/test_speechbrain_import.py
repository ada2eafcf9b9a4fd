"""`sense import`: SpeechBrain SENSE/SAMU checkpoints give SpeechBrain's embeddings.

Each checkpoint is written by SpeechBrain's own Checkpointer from the
modules of a tiny recipe (sense.testing.speechbrain); SpeechBrain's side of
each comparison is the recipe's classes recovered from that checkpoint by
SpeechBrain, run as the recipe's train.py runs them.
"""

import atexit
import json
import math
import os
import pathlib
import shutil
import tempfile

import pytest
import torch
import torch.nn.functional as F

from sense.cli import EXIT_USAGE, main
from sense.inference import SENSE
from sense.speechbrain_import import (
    CheckpointImportError,
    find_checkpoint,
    import_speechbrain,
    read_recipe,
)
from sense.testing import tiny
from sense.testing.speechbrain import build_speechbrain_run, recover_speechbrain_run

SR = 16000
TOLERANCE = 1e-5
# Our w2v-BERT front-end (torch, float32) against transformers' numpy
# extractor: features agree to ~5e-4 on a log-mel range of ~6 (tests/test_features.py).
FRONTEND_TOLERANCE = 1e-4
# Lengths with an even number of 10 ms fbank frames: transformers' extractor
# pads an odd count to an even one, adding a masked frame that SpeechBrain pools.
EVEN_LENGTHS = (24000, 11460, 40000)
ODD_LENGTH = 11300
PROJECTION = 24


def utterance(num_samples: int, seed: int) -> torch.Tensor:
    """Noise plus a sine, [1, T]."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples) / SR
    sine = 0.4 * torch.sin(2 * math.pi * (200 + 50 * seed) * t)
    return (0.1 * torch.randn(num_samples, generator=gen) + sine)[None]


def fbank_frames(num_samples: int) -> int:
    return 1 + (num_samples - 400) // 160


def speechbrain_head(modules):
    """The head's distinct modules in order (SpeechBrain's SAMU lists its pooling twice)."""
    head = []
    for module in modules["model"]:
        if all(module is not m for m in head):
            head.append(module)
    return head


@torch.no_grad()
def speechbrain_forward(modules, wavs, wav_lens=None):
    """The recipe's compute_forward: encoder, pooling (and projection, tanh), L2 norm."""
    feats = modules["wav2vec2"](wavs, wav_lens)
    head = speechbrain_head(modules)
    logits = head[0].attn_pooling_w(feats).squeeze(-1)
    emb = head[0](feats)
    for module in head[1:]:
        emb = module(emb)
    return F.normalize(emb, p=2, dim=-1), logits


@torch.no_grad()
def our_forward(model, wavs, wav_lens=None):
    frames, frame_lens = model.mods.encoder(wavs, wav_lens)
    emb, logits = model.mods.pooling(frames, frame_lens)
    return F.normalize(emb, dim=-1), logits, frame_lens


# What the tests only read (the tiny base models, the SpeechBrain runs, SpeechBrain's
# modules), built once per process: `make mutation` forks a pytest session per mutant
# from the process that ran the tests first, and a session fixture would be built again
# in each (1.7 s). None of it is made by sense.speechbrain_import; the import itself
# (`imported`) runs in every session.
_BUILT = {}


def _once(name, build):
    if name not in _BUILT:
        root = pathlib.Path(tempfile.mkdtemp(prefix=f"sense-sb-{name}-"))
        owner = os.getpid()
        atexit.register(lambda: os.getpid() == owner and shutil.rmtree(root, ignore_errors=True))
        _BUILT[name] = build(root)
    return _BUILT[name]


@pytest.fixture(scope="module")
def tiny_wav2vec2():
    return _once("wav2vec2", lambda root: tiny.build_tiny_wav2vec2(str(root)))


@pytest.fixture(scope="module")
def tiny_bert():
    return _once("bert", lambda root: tiny.build_tiny_bert(str(root)))


def _build_runs(root):
    w2v_bert = tiny.build_tiny_w2v_bert(str(root / "w2v_bert"))
    xlmr = tiny.build_tiny_xlm_roberta(str(root / "xlmr"))
    wav2vec2 = _once("wav2vec2", lambda r: tiny.build_tiny_wav2vec2(str(r)))
    bert = _once("bert", lambda r: tiny.build_tiny_bert(str(r)))
    return {
        "sense": build_speechbrain_run(root / "sense", "sense", None, w2v_bert, xlmr),
        "samu": build_speechbrain_run(root / "samu", "samu", None, wav2vec2, bert),
        "samu-xlsr": build_speechbrain_run(root / "xlsr", "samu", PROJECTION, wav2vec2, bert),
    }


@pytest.fixture(scope="module")
def runs():
    """Three SpeechBrain runs: SENSE, SAMU as SpeechBrain ships it, SAMU-XLSR's head."""
    return _once("runs", _build_runs)


@pytest.fixture(scope="module")
def imported(runs, tmp_path_factory):
    """Each run imported with `sense import` (defaults: hparams and base from the run)."""
    root = tmp_path_factory.mktemp("imported")
    folders = {}
    for name, run in runs.items():
        folders[name] = str(root / name)
        assert main(["import", str(run.checkpoint), "-o", folders[name], "-q"]) == 0
    return folders


@pytest.fixture(scope="module")
def speechbrain(runs):
    return _once(
        "speechbrain",
        lambda root: {name: recover_speechbrain_run(run) for name, run in runs.items()},
    )


@pytest.fixture(scope="module")
def ours(imported):
    return {name: SENSE.from_hparams(folder, device="cpu") for name, folder in imported.items()}


# ---------------------------------------------------------------------------
# Reading the recipe
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["recipe", "hparams"])
def test_reads_the_recipe_file_and_the_runs_hyperparams_alike(runs, which):
    sense = read_recipe(getattr(runs["sense"], which))
    assert sense.wrapper == "speechbrain.integrations.huggingface.w2v_bert.W2VBert"
    assert (sense.encoder, sense.model_type, sense.base) == (
        "wav2vec2",
        "wav2vec2-bert",
        runs["sense"].base,
    )
    assert (sense.head.recoverable, sense.head.pooling, sense.head.projection) == (
        "model",
        ["0."],
        [],
    )
    assert (sense.teacher, sense.teacher_pooling) == (runs["sense"].teacher, "cls")

    samu = read_recipe(getattr(runs["samu"], which))
    assert samu.model_type == "wav2vec2" and samu.head.pooling == ["0.", "1."]
    assert (samu.teacher_pooling, samu.teacher_trained, samu.head.activation) == (
        "pooler",
        False,
        None,
    )

    xlsr = read_recipe(getattr(runs["samu-xlsr"], which))
    assert xlsr.head.pooling == ["0."] and xlsr.head.projection == ["1.w."]
    assert xlsr.head.activation == "tanh"


def test_the_checkpoint_is_speechbrains_layout(runs):
    folder, files = find_checkpoint(runs["sense"].checkpoint)
    assert folder.name == "CKPT+checkpoint_epoch1" and (folder / "CKPT.yaml").is_file()
    assert set(files) == {
        "model",
        "wav2vec2",
        "lr_annealing_adam",
        "lr_annealing_wav2vec",
        "counter",
    }
    state = torch.load(files["model"], weights_only=True)
    assert set(state) == {"0.attn_pooling_w.weight", "0.attn_pooling_w.bias"}
    # the .ckpt files themselves, and the save folder holding one checkpoint, work too
    assert find_checkpoint([files["model"], files["wav2vec2"]])[1].keys() == {"model", "wav2vec2"}
    assert find_checkpoint(folder.parent)[0] == folder


def test_meta_records_teacher_base_and_origin(runs, imported):
    with open(os.path.join(imported["sense"], "meta.json")) as f:
        meta = json.load(f)
    assert meta["teacher"]["source"] == runs["sense"].teacher
    assert meta["teacher"]["pooling"] == "cls"
    assert meta["encoder"]["trained_from"] == runs["sense"].base
    assert meta["encoder"]["model_type"] == "wav2vec2-bert"
    origin = meta["extra"]["imported_from"]
    assert origin["checkpoint"] == str(runs["sense"].checkpoint.resolve())
    assert origin["encoder_wrapper"].endswith("W2VBert")
    with open(os.path.join(imported["samu-xlsr"], "meta.json")) as f:
        meta = json.load(f)
    assert meta["teacher"]["pooling"] == "pooler" and meta["embedding_dim"] == PROJECTION


# ---------------------------------------------------------------------------
# Identity with SpeechBrain's forward
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["samu", "samu-xlsr"])
@pytest.mark.parametrize("num_samples", EVEN_LENGTHS + (ODD_LENGTH,))
def test_samu_embeddings_and_logits_equal_speechbrains(speechbrain, ours, name, num_samples):
    wav = utterance(num_samples, seed=num_samples % 7)
    sb_emb, sb_logits = speechbrain_forward(speechbrain[name], wav)  # train_samu.py: no lens
    emb, logits, _ = our_forward(ours[name], wav)
    assert emb.shape == sb_emb.shape == (1, PROJECTION if name == "samu-xlsr" else 32)
    print(
        f"\n{name} {num_samples} samples: |emb - SB| {(emb - sb_emb).abs().max():.2e}, "
        f"|logits - SB| {(logits - sb_logits).abs().max():.2e}"
    )
    torch.testing.assert_close(emb, sb_emb, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(logits, sb_logits, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(ours[name].encode_batch(wav), sb_emb, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("num_samples", EVEN_LENGTHS)
def test_sense_model_equals_speechbrains_on_the_same_features(speechbrain, ours, num_samples):
    """Given SpeechBrain's own input features, the imported model is SpeechBrain's model."""
    wav = utterance(num_samples, seed=num_samples % 7)
    w2v = speechbrain["sense"]["wav2vec2"]
    inputs = w2v.feature_extractor([wav[0]], sampling_rate=SR, return_tensors="pt", padding=True)
    assert bool(inputs["attention_mask"].all())
    sb_emb, sb_logits = speechbrain_forward(speechbrain["sense"], wav, torch.ones(1))
    with torch.no_grad():
        frames = ours["sense"].mods.encoder.model(**inputs).last_hidden_state
        emb, logits = ours["sense"].mods.pooling(frames, torch.ones(1))
    emb = F.normalize(emb, dim=-1)
    print(
        f"\nSENSE {num_samples} samples, SpeechBrain's features: |emb - SB| "
        f"{(emb - sb_emb).abs().max():.2e}, |logits - SB| {(logits - sb_logits).abs().max():.2e}"
    )
    torch.testing.assert_close(emb, sb_emb, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(logits, sb_logits, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("num_samples", EVEN_LENGTHS)
def test_sense_embeddings_from_waveforms_equal_speechbrains(speechbrain, ours, num_samples):
    """Through our torch front-end: the difference is the front-end's float32 rounding."""
    wav = utterance(num_samples, seed=num_samples % 7)
    sb_emb, sb_logits = speechbrain_forward(speechbrain["sense"], wav, torch.ones(1))
    emb, logits, _ = our_forward(ours["sense"], wav)
    assert logits.shape == sb_logits.shape
    extractor = speechbrain["sense"]["wav2vec2"].feature_extractor
    sb_feats = extractor([wav[0]], sampling_rate=SR, return_tensors="pt")["input_features"]
    feats, _ = ours["sense"].mods.encoder.fbank(wav)
    feat_diff = (feats - sb_feats).abs().max().item()
    emb_diff = (emb - sb_emb).abs().max().item()
    logit_diff = (logits - sb_logits).abs().max().item()
    print(
        f"\nSENSE {num_samples} samples: |features - SB| {feat_diff:.2e}, "
        f"|emb - SB| {emb_diff:.2e}, |logits - SB| {logit_diff:.2e}"
    )
    assert feat_diff <= 1e-3
    assert emb_diff <= FRONTEND_TOLERANCE and logit_diff <= FRONTEND_TOLERANCE
    torch.testing.assert_close(ours["sense"].encode_batch(wav), emb, atol=1e-6, rtol=0)


def test_sense_odd_frame_count_gets_a_masked_frame_speechbrain_pools(speechbrain, ours):
    """Documented difference: the extractor pads an odd fbank count, SpeechBrain pools the pad."""
    assert fbank_frames(ODD_LENGTH) % 2 == 1
    wav = utterance(ODD_LENGTH, seed=3)
    sb_emb, sb_logits = speechbrain_forward(speechbrain["sense"], wav, torch.ones(1))
    emb, logits, _ = our_forward(ours["sense"], wav)
    assert sb_logits.shape[1] == logits.shape[1] + 1
    # the real frames get the same scores; only the extra (masked) frame differs
    logit_diff = (logits - sb_logits[:, :-1]).abs().max().item()
    emb_diff = (emb - sb_emb).abs().max().item()
    cosine = F.cosine_similarity(emb, sb_emb).item()
    print(
        f"\nSENSE {ODD_LENGTH} samples (odd frames): |logits - SB| {logit_diff:.2e} on the real "
        f"frames, |emb - SB| {emb_diff:.2e}, cosine {cosine:.6f}"
    )
    assert logit_diff <= FRONTEND_TOLERANCE


@pytest.mark.parametrize("dbfs", [-10, -30, -50, -70])
def test_samu_waveform_normalisation_eps_matters_only_for_near_silence(speechbrain, ours, dbfs):
    """Documented difference: layer_norm's eps 1e-5 (SpeechBrain) against the extractor's 1e-7."""
    wav = utterance(24000, seed=2)
    wav = wav / wav.square().mean().sqrt() * 10 ** (dbfs / 20)
    sb_emb, _ = speechbrain_forward(speechbrain["samu"], wav)
    emb, _, _ = our_forward(ours["samu"], wav)
    diff = (emb - sb_emb).abs().max().item()
    print(f"\nsamu at {dbfs} dBFS: |emb - SB| {diff:.2e}")
    if dbfs >= -50:
        assert diff <= TOLERANCE
    else:
        assert diff > TOLERANCE, "near silence, the two eps should part"


# ---------------------------------------------------------------------------
# Where SpeechBrain's modules differ: padded batches
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sense", "samu"])
def test_padded_batch_changes_speechbrains_embeddings_not_ours(speechbrain, ours, name):
    wavs = [utterance(n, seed=i) for i, n in enumerate(EVEN_LENGTHS)]
    longest = max(w.shape[1] for w in wavs)
    batch = torch.zeros(len(wavs), longest)
    for i, w in enumerate(wavs):
        batch[i, : w.shape[1]] = w[0]
    lens = torch.tensor([w.shape[1] / longest for w in wavs])
    # train.py of SENSE passes the lengths to the encoder, train_samu.py does not
    sb_batch, _ = speechbrain_forward(speechbrain[name], batch, lens if name == "sense" else None)
    our_batch = ours[name].encode_batch(batch, lens)
    for i, wav in enumerate(wavs):
        sb_alone, _ = speechbrain_forward(speechbrain[name], wav, torch.ones(1))
        our_alone = ours[name].encode_batch(wav)
        sb_cos = F.cosine_similarity(sb_batch[i : i + 1], sb_alone).item()
        sb_diff = (sb_batch[i] - sb_alone[0]).abs().max().item()
        our_diff = (our_batch[i] - our_alone[0]).abs().max().item()
        print(
            f"\n{name} utterance {i} ({wav.shape[1] / SR:.2f} s in a {longest / SR:.2f} s batch): "
            f"SpeechBrain batch vs alone |diff| {sb_diff:.2e} cosine {sb_cos:.6f}; "
            f"ours |diff| {our_diff:.2e}"
        )
        assert our_diff <= TOLERANCE
        if wav.shape[1] < longest:
            assert sb_diff > 100 * TOLERANCE, "SpeechBrain's pooling should see the padding"


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------


def test_activation_applied_in_train_py_can_be_given(runs, tmp_path):
    folder = import_speechbrain(runs["samu"].checkpoint, tmp_path / "m", activation="tanh")
    model = SENSE.from_hparams(folder, device="cpu")
    assert isinstance(model.mods.pooling.activation, torch.nn.Tanh)


def test_teacher_override_and_files_with_explicit_hparams(runs, tmp_path, tiny_bert):
    run = runs["sense"]
    files = [str(run.checkpoint / "model.ckpt"), str(run.checkpoint / "wav2vec2.ckpt")]
    out = str(tmp_path / "m")
    argv = ["import", *files, "--hparams", str(run.recipe), "--teacher", tiny_bert, "-o", out, "-q"]
    assert main(argv) == 0
    with open(os.path.join(out, "meta.json")) as f:
        assert json.load(f)["teacher"]["source"] == tiny_bert


# ---------------------------------------------------------------------------
# Bad input: `sense: error: ...`, exit 2, no traceback
# ---------------------------------------------------------------------------


def _copy_checkpoint(run, dest):
    """The run folder copied: hyperparams.yaml and save/CKPT+.../"""
    shutil.copytree(run.hparams.parent, dest)
    return dest / "save" / run.checkpoint.name


def _case(kind, runs, root, tiny_wav2vec2):
    """``(argv, expected words in the message)`` for one class of bad input."""
    run = runs["sense"]
    out = str(root / "out")
    if kind == "missing-path":
        return ["import", str(root / "nope"), "-o", out], "no such checkpoint"
    if kind == "not-a-checkpoint":
        (root / "empty").mkdir()
        return ["import", str(root / "empty"), "-o", out], "not a SpeechBrain checkpoint"
    if kind == "several-checkpoints":
        save = _copy_checkpoint(run, root / "run").parent
        shutil.copytree(save / run.checkpoint.name, save / "CKPT+checkpoint_epoch2")
        return ["import", str(save), "-o", out], "holds 2 checkpoints"
    if kind == "missing-file":
        ckpt = _copy_checkpoint(run, root / "run")
        os.remove(ckpt / "model.ckpt")
        return ["import", str(ckpt), "-o", out], "model.ckpt: missing"
    if kind == "corrupt-file":
        ckpt = _copy_checkpoint(run, root / "run")
        (ckpt / "wav2vec2.ckpt").write_bytes(b"not a torch file")
        return ["import", str(ckpt), "-o", out], "not a readable checkpoint file"
    if kind == "no-hparams":
        shutil.copytree(run.checkpoint, root / "CKPT+lonely")
        return ["import", str(root / "CKPT+lonely"), "-o", out], "--hparams"
    if kind == "not-a-recipe":
        (root / "other.yaml").write_text("lr: 0.1\nmodel: !new:torch.nn.Linear [2, 2]\n")
        argv = ["import", str(run.checkpoint), "--hparams", str(root / "other.yaml"), "-o", out]
        return argv, "no speechbrain.utils.checkpoints.Checkpointer"
    if kind == "output-norm":
        lines = run.hparams.read_text().splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if "W2VBert" in line) + 1
        (root / "norm.yaml").write_text(
            "".join(lines[:at] + ["  output_norm: true\n"] + lines[at:])
        )
        argv = ["import", str(run.checkpoint), "--hparams", str(root / "norm.yaml"), "-o", out]
        return argv, "output_norm: True"
    if kind == "shape-mismatch":
        wide = tiny.build_tiny_w2v_bert(str(root / "wide"), hidden_size=48)
        argv = ["import", str(run.checkpoint), "--base", wide, "-o", out]
        return argv, "differ in shape"
    if kind == "wrong-model-type":
        argv = ["import", str(run.checkpoint), "--base", tiny_wav2vec2, "-o", out]
        return argv, "is a 'wav2vec2' model"
    if kind == "unreachable-base":
        argv = ["import", str(run.checkpoint), "--base", str(root / "no-base"), "-o", out]
        return argv, "cannot read the base model"
    if kind == "output-exists":
        (root / "out").mkdir()
        (root / "out" / "notes.txt").write_text("mine", encoding="utf-8")
        return ["import", str(run.checkpoint), "-o", out], "holds other files (notes.txt)"
    raise AssertionError(kind)


BAD_INPUTS = [
    "missing-path",
    "not-a-checkpoint",
    "several-checkpoints",
    "missing-file",
    "corrupt-file",
    "no-hparams",
    "not-a-recipe",
    "output-norm",
    "shape-mismatch",
    "wrong-model-type",
    "unreachable-base",
    "output-exists",
]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_is_a_clear_error_with_exit_2(runs, tmp_path, tiny_wav2vec2, capsys, kind):
    argv, words = _case(kind, runs, tmp_path, tiny_wav2vec2)
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("sense import: error: ")]
    assert len(errors) == 1 and words in errors[0], err
    assert "Traceback" not in err
    if kind != "output-exists":
        assert not os.path.exists(tmp_path / "out")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out.")], "temporary files left"


def test_head_weights_that_disagree_with_the_hparams_are_refused(runs, tmp_path):
    ckpt = _copy_checkpoint(runs["samu"], tmp_path / "run")
    state = torch.load(ckpt / "model.ckpt", weights_only=True)
    state["1.attn_pooling_w.bias"] = state["1.attn_pooling_w.bias"] + 1.0
    torch.save(state, ckpt / "model.ckpt")
    with pytest.raises(CheckpointImportError, match="same module in the hparams but differ"):
        import_speechbrain(ckpt, tmp_path / "m")


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_an_encoder_checkpoint_without_every_tensor_is_refused(runs, tmp_path, change):
    """A tensor missing from the encoder's file would leave random weights: refused, as an
    unknown one is; nothing is written."""
    ckpt = _copy_checkpoint(runs["sense"], tmp_path / "run")
    state = torch.load(ckpt / "wav2vec2.ckpt", weights_only=True)
    key = next(k for k in state if ".layers.0." in k and k.endswith(".weight"))
    inner = key[len("model.") :]
    if change == "missing":
        del state[key]
        words = f"1 missing (e.g. {inner})"
    else:
        state["model.encoder.layers.9.extra.weight"] = state[key].clone()
        words = "1 not in the base (e.g. encoder.layers.9.extra.weight)"
    torch.save(state, ckpt / "wav2vec2.ckpt")
    with pytest.raises(CheckpointImportError) as caught:
        import_speechbrain(ckpt, tmp_path / "m")
    assert words in str(caught.value) and "differ in shape" not in str(caught.value)
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------
# What the import records and how it treats its output (make mutation)
# ---------------------------------------------------------------------------


def _meta(folder):
    with open(os.path.join(folder, "meta.json")) as f:
        return json.load(f)


def test_imported_from_records_the_checkpoint_the_hparams_and_the_head(runs, tmp_path):
    """Imported here, not by the module's fixture: make mutation runs a test for a mutant
    only when the test itself called the mutated function."""
    run = runs["samu-xlsr"]
    folders = {name: import_speechbrain(runs[name].checkpoint, tmp_path / name) for name in runs}
    assert _meta(folders["samu-xlsr"])["extra"]["imported_from"] == {
        "format": "speechbrain",
        "checkpoint": str(run.checkpoint.resolve()),
        "checkpoint_meta": "CKPT+checkpoint_epoch1 (loss=0.5, epoch=1)",
        "hparams": str(run.hparams.resolve()),
        "encoder_wrapper": "speechbrain.integrations.huggingface.wav2vec2.Wav2Vec2",
        "head": {"recoverable": "model", "projection": True, "activation": "tanh"},
        "teacher_fine_tuned": False,
    }
    head = _meta(folders["samu"])["extra"]["imported_from"]["head"]
    assert head == {"recoverable": "model", "projection": False, "activation": None}
    with open(os.path.join(folders["samu-xlsr"], "hyperparams.yaml")) as f:
        hparams = f.read()
    assert "\nnormalize: True\n" in hparams and 'activation: "tanh"' in hparams
    assert _meta(folders["sense"])["teacher"]["pooling"] == "cls"


def test_hparams_without_a_teacher_give_a_model_without_one(runs, tmp_path, caplog):
    ckpt = _copy_checkpoint(runs["sense"], tmp_path / "run")
    hparams = ckpt.parent.parent / "hyperparams.yaml"
    text = hparams.read_text()
    assert "BGEM3SentenceEmbeddings" in text
    hparams.write_text(text.replace("BGEM3SentenceEmbeddings", "SomeSentenceEmbeddings"))
    with caplog.at_level("WARNING", logger="sense.speechbrain_import"):
        folder = import_speechbrain(ckpt, tmp_path / "m")
    assert _meta(folder)["teacher"] == {"center": None}  # no source, pooling, ...
    assert any("names no teacher" in r.getMessage() for r in caplog.records)


def test_activation_none_drops_the_recipes_activation(runs, tmp_path):
    folder = import_speechbrain(runs["samu-xlsr"].checkpoint, tmp_path / "m", activation="none")
    assert _meta(folder)["extra"]["imported_from"]["head"]["activation"] is None
    assert SENSE.from_hparams(folder, device="cpu").mods.pooling.activation is None


def test_output_an_earlier_model_is_replaced_anything_else_only_with_force(runs, tmp_path):
    checkpoint = runs["samu"].checkpoint
    out = tmp_path / "m"
    import_speechbrain(checkpoint, out)
    import_speechbrain(checkpoint, out)  # an earlier model folder: replaced
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(
        FileExistsError, match=r"holds other files \(notes.txt\), not a sense model;"
    ):
        import_speechbrain(checkpoint, other)
    assert import_speechbrain(checkpoint, other, force=True) == str(other)
    assert not (other / "notes.txt").exists() and _meta(other)["format"] == "sense-model"


def test_a_teacher_fine_tuned_with_the_student_is_recorded_and_warned_about(
    runs, tmp_path, caplog, tiny_bert
):
    """SAMU's LaBSE is saved with the student; with freeze false the checkpoint's teacher
    differs from the original the model records: a warning, unless a teacher is given."""
    ckpt = _copy_checkpoint(runs["samu"], tmp_path / "run")
    hparams = ckpt.parent.parent / "hyperparams.yaml"
    text = hparams.read_text()
    assert "  freeze: true\n  output_norm: true" in text
    hparams.write_text(
        text.replace("  freeze: true\n  output_norm: true", "  freeze: false\n  output_norm: true")
    )
    logger = "sense.speechbrain_import"
    with caplog.at_level("WARNING", logger=logger):
        folder = import_speechbrain(ckpt, tmp_path / "m")
    warned = [r.getMessage() for r in caplog.records if r.name == logger]
    assert len(warned) == 1 and "fine-tuned its teacher" in warned[0], warned
    assert _meta(folder)["extra"]["imported_from"]["teacher_fine_tuned"] is True
    caplog.clear()
    with caplog.at_level("WARNING", logger=logger):
        import_speechbrain(ckpt, tmp_path / "m2", teacher=tiny_bert)
        import_speechbrain(runs["samu"].checkpoint, tmp_path / "m3")
    assert [r.getMessage() for r in caplog.records if r.name == logger] == []


def test_errors_in_the_weights_name_the_file_they_are_in(runs, tmp_path):
    ckpt = _copy_checkpoint(runs["samu-xlsr"], tmp_path / "run")
    head = torch.load(ckpt / "model.ckpt", weights_only=True)
    head["1.w.weight"] = head["1.w.weight"][:, :-1].clone()
    torch.save(head, ckpt / "model.ckpt")
    with pytest.raises(CheckpointImportError) as caught:
        import_speechbrain(ckpt, tmp_path / "m")
    assert str(caught.value).startswith(f"{ckpt / 'model.ckpt'}: the projection has shape [24, 31]")
    ckpt = _copy_checkpoint(runs["samu"], tmp_path / "run2")
    state = torch.load(ckpt / "wav2vec2.ckpt", weights_only=True)
    del state[next(iter(state))]
    torch.save(state, ckpt / "wav2vec2.ckpt")
    with pytest.raises(CheckpointImportError) as caught:
        import_speechbrain(ckpt, tmp_path / "m")
    assert str(caught.value).startswith(
        f"{ckpt / 'wav2vec2.ckpt'}: does not match the base model {runs['samu'].base!r}: 1 missing"
    )
