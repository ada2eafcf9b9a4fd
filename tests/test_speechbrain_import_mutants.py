"""sense.speechbrain_import: what mutation testing (make mutation) found unpinned.

Hand-written hparams files (positional arguments, Sequential heads, teachers
trained or frozen, placeholders), the checkpoint finder, the state-dict checks
and the pooling head, each on inputs small enough to need no model.
"""

import pathlib

import pytest
import torch

from sense.speechbrain_import import (
    CheckpointImportError,
    HeadLayout,
    _base_reference,
    _checkpoint_summary,
    _encoder_state,
    _load_yaml,
    _match_state,
    build_pooling,
    find_checkpoint,
    load_state,
    read_recipe,
)

CHECKPOINTER = "speechbrain.utils.checkpoints.Checkpointer"
# The head's candidate modules, referenced by name (!ref <pool>...).
MODULES = """\
pool: !new:speechbrain.nnet.pooling.AttentionPooling
  input_dim: 8
lin: !new:torch.nn.Linear
  in_features: 8
  out_features: 4
lin2: !new:torch.nn.Linear
  in_features: 4
  out_features: 4
sblin: !new:speechbrain.nnet.linear.Linear
  input_size: 8
  n_neurons: 4
tanh: !new:torch.nn.Tanh
relu: !new:torch.nn.ReLU
gelu: !new:torch.nn.GELU
drop: !new:torch.nn.Dropout
  p: 0.1
"""
POOL = "!ref <pool>"
LABSE = "speechbrain.integrations.huggingface.labse.LaBSE"
W2V = "speechbrain.integrations.huggingface.wav2vec2.Wav2Vec2"


def write(tmp_path: pathlib.Path, text: str, name: str = "hparams.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def recipe(
    encoder: str = f"!new:{W2V}\n  source: org/base",
    head: str = f"!new:torch.nn.ModuleList [[{POOL}]]",
    teacher: str = "",
    recoverables: str = "model: !ref <model>\n    enc: !ref <enc>",
) -> str:
    """An hparams file: the encoder, then the head, the teacher and the checkpointer."""
    return (
        "out: !PLACEHOLDER\n" + MODULES + f"enc: {encoder}\n"
        f"model: {head}\n"
        + (f"teacher: {teacher}\n" if teacher else "")
        + f"checkpointer: !new:{CHECKPOINTER}\n"
        "  checkpoints_dir: !ref <out>/save\n"
        "  recoverables:\n"
        f"    {recoverables}\n"
    )


# ---------------------------------------------------------------------------
# read_recipe
# ---------------------------------------------------------------------------


def test_positional_arguments_are_read_by_position(tmp_path):
    """Checkpointer(dir, recoverables), Wav2Vec2(source, ...), LaBSE(source, save, freeze)."""
    text = MODULES + (
        f"enc: !new:{W2V} [org/base, /tmp/save]\n"
        f"model: !new:torch.nn.ModuleList [[{POOL}]]\n"
        f"teacher: !new:{LABSE} [org/labse, /tmp/save, False]\n"
        f"checkpointer: !new:{CHECKPOINTER}\n"
        "  - /tmp/save\n"
        "  - model: !ref <model>\n"
        "    enc: !ref <enc>\n"
        "    teacher: !ref <teacher>\n"
    )
    layout = read_recipe(write(tmp_path, text))
    assert (layout.encoder, layout.wrapper, layout.model_type) == ("enc", W2V, "wav2vec2")
    assert (layout.base, layout.teacher, layout.teacher_pooling) == (
        "org/base",
        "org/labse",
        "pooler",
    )
    assert layout.teacher_trained is True  # saved with the student and freeze=False
    assert layout.head == HeadLayout("model", ["0."], [], None)
    assert layout.path == str(tmp_path / "hparams.yaml")


def test_a_positional_teacher_without_its_freeze_argument_is_frozen(tmp_path):
    """LaBSE(source, save_path): no third argument, the default (frozen) holds."""
    text = recipe(
        teacher=f"!new:{LABSE} [org/labse, /tmp/save]",
        recoverables="model: !ref <model>\n    enc: !ref <enc>\n    teacher: !ref <teacher>",
    )
    layout = read_recipe(write(tmp_path, text))
    assert (layout.teacher, layout.teacher_trained) == ("org/labse", False)


@pytest.mark.parametrize(
    "freeze, saved, trained",
    [
        (None, True, False),  # no freeze argument: frozen (LaBSE's default)
        ("False", True, True),
        ("True", True, False),
        ("False", False, False),  # not saved with the student: the original weights
    ],
)
def test_teacher_trained_only_when_saved_and_not_frozen(tmp_path, freeze, saved, trained):
    teacher = f"!new:{LABSE}\n  source: org/labse" + (f"\n  freeze: {freeze}" if freeze else "")
    recoverables = "model: !ref <model>\n    enc: !ref <enc>"
    if saved:
        recoverables += "\n    teacher: !ref <teacher>"
    layout = read_recipe(write(tmp_path, recipe(teacher=teacher, recoverables=recoverables)))
    assert (layout.teacher, layout.teacher_pooling) == ("org/labse", "pooler")
    assert layout.teacher_trained is trained


def test_a_speechbrain_module_before_the_teacher_is_not_taken_for_it(tmp_path):
    """The teacher is found by its class, after the encoder and other speechbrain modules."""
    text = recipe(teacher=f"!new:{LABSE}\n  source: org/labse").replace(
        "checkpointer:", "sched: !new:speechbrain.nnet.schedulers.NewBobScheduler\ncheckpointer:"
    )
    layout = read_recipe(write(tmp_path, text))
    assert (layout.teacher, layout.teacher_pooling) == ("org/labse", "pooler")


def test_no_teacher_and_no_source(tmp_path):
    layout = read_recipe(write(tmp_path, recipe(encoder=f"!new:{W2V}\n  freeze: False")))
    assert layout.base is None
    assert (layout.teacher, layout.teacher_pooling, layout.teacher_trained) == (None, None, False)


def test_placeholders_resolve_to_a_marker_at_any_depth(tmp_path):
    """References to ``!PLACEHOLDER`` values (top-level or nested) resolve to sense's marker."""
    path = write(
        tmp_path,
        "out: !PLACEHOLDER\n"
        "nested:\n  inner: !PLACEHOLDER\n  keep: 3\n"
        "src: !ref <out>/base\n"
        "src2: !ref <nested[inner]>/x\n",
    )
    assert _load_yaml(path) == {
        "out": "unset-by-sense-import",
        "nested": {"inner": "unset-by-sense-import", "keep": 3},
        "src": "unset-by-sense-import/base",
        "src2": "unset-by-sense-import/x",
    }


def test_a_base_made_of_a_placeholder_is_read_through_it(tmp_path):
    layout = read_recipe(write(tmp_path, recipe(encoder=f"!new:{W2V}\n  source: !ref <out>/b")))
    assert layout.base == "unset-by-sense-import/b"


@pytest.mark.parametrize(
    "encoders, found",
    [
        ("", "found none"),
        (f"e2: !new:{W2V}\n  source: x\n", "found enc, e2"),
    ],
)
def test_exactly_one_speech_encoder_and_the_message_names_those_found(tmp_path, encoders, found):
    recoverables = "model: !ref <model>\n    enc: !ref <enc>"
    if encoders:
        recoverables += "\n    e2: !ref <e2>"
    else:
        recoverables = "model: !ref <model>"
    text = encoders + recipe(recoverables=recoverables)
    path = write(tmp_path, text)
    with pytest.raises(CheckpointImportError, match="need exactly one speech encoder") as caught:
        read_recipe(path)
    assert str(caught.value).endswith(f"checkpointer's recoverables, {found}")


@pytest.mark.parametrize("option", ["output_norm", "output_all_hiddens"])
def test_encoder_options_sense_does_not_reproduce_are_refused(tmp_path, option):
    path = write(tmp_path, recipe(encoder=f"!new:{W2V}\n  source: b\n  {option}: True"))
    with pytest.raises(CheckpointImportError, match=f"has {option}: True"):
        read_recipe(path)


def test_a_sequential_head_and_a_speechbrain_linear(tmp_path):
    head = "!new:torch.nn.Sequential [!ref <pool>, !ref <sblin>, !ref <gelu>]"
    layout = read_recipe(write(tmp_path, recipe(head=head)))
    assert layout.head == HeadLayout("model", ["0."], ["1.w."], "gelu")


@pytest.mark.parametrize(
    "members, words",
    [
        ("[<lin>, <pool>]", "has its pooling after its projection"),
        ("[<pool>, <tanh>, <lin>]", "has its projection after its activation"),
        ("[<pool>, <relu>, <tanh>]", "has its activation after its activation"),
        ("[<pool>, <lin>, <lin2>]", "has its projection after its projection"),
    ],
)
def test_a_head_out_of_order_or_with_a_stage_twice_is_refused(tmp_path, members, words):
    head = "!new:torch.nn.ModuleList [" + members.replace("<", "!ref <") + "]"
    path = write(tmp_path, recipe(head=head))
    with pytest.raises(CheckpointImportError) as caught:
        read_recipe(path)
    assert str(caught.value).startswith(f"{path}: the head 'model' {words}; ")


def test_a_head_module_sense_cannot_map_is_named_with_the_file(tmp_path):
    head = "!new:torch.nn.ModuleList [[!ref <pool>, !ref <drop>]]"
    path = write(tmp_path, recipe(head=head))
    with pytest.raises(CheckpointImportError) as caught:
        read_recipe(path)
    assert str(caught.value).startswith(f"{path}: the head 'model' holds a torch.nn.Dropout ")


def test_two_recoverables_with_a_pooling_are_refused(tmp_path):
    text = recipe(recoverables="model: !ref <model>\n    enc: !ref <enc>\n    m2: !ref <m2>")
    text = text.replace(
        "checkpointer:", "m2: !new:torch.nn.ModuleList [[!ref <pool>]]\ncheckpointer:"
    )
    with pytest.raises(CheckpointImportError, match=r"several recoverables \(model, m2\)"):
        read_recipe(write(tmp_path, text))


# ---------------------------------------------------------------------------
# find_checkpoint and the checkpoint's summary
# ---------------------------------------------------------------------------


def ckpt(folder: pathlib.Path, meta: str | None = "loss: 0.5\nepoch: 3\n", files=("model",)):
    folder.mkdir(parents=True)
    if meta is not None:
        (folder / "CKPT.yaml").write_text(meta, encoding="utf-8")
    for name in files:
        torch.save({"w": torch.ones(1)}, folder / f"{name}.ckpt")
    return folder


@pytest.mark.parametrize(
    "meta, shown",
    [
        ("loss: 0.5\nepoch: 3\nunixtime: 1\n", "CKPT+a (loss=0.5, epoch=3)"),
        ("epoch: 3\n", "CKPT+a (epoch=3)"),
        ("unixtime: 1\n", "CKPT+a"),
        ("", "CKPT+a"),  # empty file
        ("loss: [unclosed\n", "CKPT+a"),  # not YAML
        (None, "CKPT+a"),  # no file
    ],
)
def test_checkpoint_summary_shows_loss_and_epoch(tmp_path, meta, shown):
    assert _checkpoint_summary(ckpt(tmp_path / "CKPT+a", meta)) == shown


def test_a_folder_of_ckpt_files_without_its_meta_is_a_checkpoint(tmp_path):
    folder = ckpt(tmp_path / "CKPT+a", meta=None, files=("model", "enc"))
    assert find_checkpoint(folder) == (
        folder,
        {"enc": folder / "enc.ckpt", "model": folder / "model.ckpt"},
    )


def test_a_save_folder_counts_only_ckpt_folders_with_their_meta(tmp_path):
    save = tmp_path / "save"
    chosen = ckpt(save / "CKPT+b")
    ckpt(save / "CKPT+a", meta=None)  # no CKPT.yaml: an interrupted save
    ckpt(save / "other", files=())  # a CKPT.yaml, not a CKPT+ folder
    assert find_checkpoint(save) == (chosen, {"model": chosen / "model.ckpt"})


def test_several_checkpoints_are_listed_with_their_summaries(tmp_path):
    save = tmp_path / "save"
    ckpt(save / "CKPT+a")
    ckpt(save / "CKPT+b", meta="epoch: 4\n")
    with pytest.raises(CheckpointImportError) as caught:
        find_checkpoint(save)
    assert str(caught.value) == (
        f"{save}: holds 2 checkpoints, give the one to import: "
        "CKPT+a (loss=0.5, epoch=3); CKPT+b (epoch=4)"
    )


def test_files_are_ckpt_files_and_their_folder_is_the_first_ones(tmp_path):
    a = ckpt(tmp_path / "CKPT+a")
    assert find_checkpoint([a / "model.ckpt"]) == (a, {"model": a / "model.ckpt"})
    with pytest.raises(CheckpointImportError, match="give one CKPT"):
        find_checkpoint([a, a / "model.ckpt"])  # a folder among several paths
    (a / "notes.txt").write_text("x")
    with pytest.raises(CheckpointImportError, match="notes.txt: give one CKPT"):
        find_checkpoint([a / "model.ckpt", a / "notes.txt"])
    # files from several folders: the first file's folder
    others = [ckpt(tmp_path / f"f{i}", files=(f"m{i}",)) / f"m{i}.ckpt" for i in range(12)]
    assert find_checkpoint(others)[0] == tmp_path / "f0"
    assert find_checkpoint(others[5:])[0] == tmp_path / "f5"
    for i in range(10):  # two folders: the first file's, whichever a set would give
        assert find_checkpoint(others[i : i + 2])[0] == tmp_path / f"f{i}"


# ---------------------------------------------------------------------------
# State dicts
# ---------------------------------------------------------------------------


class NotATensor:
    pass


def test_load_state_reads_weights_only(tmp_path):
    """A pickled object is refused by torch's weights-only loader, not unpickled."""
    path = tmp_path / "x.ckpt"
    torch.save({"w": NotATensor()}, path)
    with pytest.raises(CheckpointImportError, match=f"{path}: not a readable checkpoint file"):
        load_state(path)


@pytest.mark.parametrize("state", [{"w": torch.ones(1), "n": 3}, [torch.ones(1)]])
def test_load_state_wants_a_dict_of_tensors(tmp_path, state):
    path = tmp_path / "x.ckpt"
    torch.save(state, path)
    with pytest.raises(CheckpointImportError, match=f"{path}: not a state dict of tensors"):
        load_state(path)


def test_an_encoder_state_dict_with_a_key_outside_the_model_is_refused(tmp_path):
    path = tmp_path / "enc.ckpt"
    torch.save({"model.w": torch.ones(1), "other.w": torch.ones(1)}, path)
    with pytest.raises(CheckpointImportError, match="keys should all start with 'model.'"):
        _encoder_state(path)
    torch.save({"model.w": torch.ones(1), "model.b": torch.zeros(2)}, path)
    assert {k: v.tolist() for k, v in _encoder_state(path).items()} == {"w": [1.0], "b": [0, 0]}


def test_one_tensor_of_the_wrong_shape_is_named(tmp_path):
    model = torch.nn.Linear(2, 3)
    state = {"weight": torch.zeros(3, 2), "bias": torch.zeros(4)}
    with pytest.raises(CheckpointImportError) as caught:
        _match_state(model, state, "enc.ckpt", "org/base")
    assert str(caught.value) == (
        "enc.ckpt: does not match the base model 'org/base': 1 tensor(s) differ in shape "
        "(e.g. bias: [4] in the checkpoint, [3] in the base). "
        "Give the model the recipe fine-tuned with --base"
    )


# ---------------------------------------------------------------------------
# The pooling head
# ---------------------------------------------------------------------------

D = 4


def head_state(score=(1, D), bias=(1,), projection=None, extra=False):
    state = {
        "0.attn_pooling_w.weight": torch.randn(*score),
        "0.attn_pooling_w.bias": torch.randn(*bias),
    }
    if projection is not None:
        state["1.w.weight"] = torch.randn(*projection)
        state["1.w.bias"] = torch.randn(projection[0])
    if extra:
        state["2.extra"] = torch.ones(1)
    return state


def test_build_pooling_holds_the_heads_weights():
    state = head_state(projection=(3, D))
    head = HeadLayout("model", ["0."], ["1.w."], "tanh")
    module = build_pooling(head, state, D, "tanh", "model.ckpt")
    assert torch.equal(module.attention.weight, state["0.attn_pooling_w.weight"])
    assert torch.equal(module.attention.bias, state["0.attn_pooling_w.bias"])
    assert torch.equal(module.projection.weight, state["1.w.weight"])
    assert torch.equal(module.projection.bias, state["1.w.bias"])
    assert not module.training


@pytest.mark.parametrize(
    "state, words",
    [
        (head_state(score=(2, D)), "the attention scorer has shape [2, 4], expected [1, D]"),
        (head_state(bias=(2,)), "the attention scorer has shape [1, 4], expected [1, D]"),
        (
            head_state(score=(1, D + 1)),
            "the pooling takes 5-dim frames, the base model gives 4-dim",
        ),
        (head_state(projection=(3, D + 1)), "the projection has shape [3, 5], expected [out, 4]"),
        (head_state(projection=(3,)), "the projection has shape [3], expected [out, 4]"),
        (head_state(extra=True), "the head's state dict holds tensors sense cannot place: 2.extra"),
    ],
)
def test_build_pooling_refuses_weights_it_cannot_place_naming_the_file(state, words):
    projection = ["1.w."] if "1.w.weight" in state else []
    with pytest.raises(CheckpointImportError) as caught:
        build_pooling(HeadLayout("model", ["0."], projection), state, D, None, "model.ckpt")
    assert str(caught.value).startswith(f"model.ckpt: {words}")


def test_a_missing_head_tensor_is_named_with_the_file():
    state = head_state()
    del state["0.attn_pooling_w.bias"]
    with pytest.raises(CheckpointImportError) as caught:
        build_pooling(HeadLayout("model", ["0."]), state, D, None, "model.ckpt")
    assert str(caught.value) == "model.ckpt: no '0.attn_pooling_w.bias' in the head's state dict"
    state = head_state()
    with pytest.raises(CheckpointImportError) as caught:  # the second copy of the pooling
        build_pooling(HeadLayout("model", ["0.", "1."]), state, D, None, "model.ckpt")
    assert str(caught.value) == "model.ckpt: no '1.attn_pooling_w.weight' in the head's state dict"


def test_base_reference_makes_a_local_folder_absolute_and_keeps_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base").mkdir()
    assert _base_reference("base") == str(tmp_path / "base")
    assert _base_reference("org/not-a-folder") == "org/not-a-folder"


# ---------------------------------------------------------------------------
# Files are read as UTF-8 whatever the locale
# ---------------------------------------------------------------------------


def test_hparams_and_checkpoint_meta_are_read_as_utf8(tmp_path, ascii_locale):
    text = "# Entraîné sur Common Voice\n" + recipe(teacher=f"!new:{LABSE}\n  source: org/läbse")
    path = write(tmp_path, text)
    with pytest.raises(UnicodeDecodeError):  # what the locale's encoding would do
        open(path).read()  # noqa: SIM115
    assert read_recipe(path).teacher == "org/läbse"
    folder = ckpt(tmp_path / "CKPT+a", "note: réglé\nloss: 0.5\n")
    assert _checkpoint_summary(folder) == "CKPT+a (loss=0.5)"
