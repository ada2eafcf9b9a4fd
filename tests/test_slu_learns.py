"""The CTC probe learns: held-out COER falls well below its value at initialisation."""


import pytest
from hyperpyyaml import load_hyperpyyaml

from sense.demo.slu import HPARAMS, prepare_demo_slu
from sense.slu.brain import HEAD, SLUBrain
from sense.slu.data import make_slu_datasets, markup_from_manifests
from sense.testing.tiny import build_tiny_w2v_bert

EPOCHS = 6


@pytest.mark.slow
def test_probe_learns_slots(tmp_path):
    data = str(tmp_path / "data")
    manifests = prepare_demo_slu(data, ["en"], sentences=48, heldout=8, dev=4)["en"]
    encoder_dir = build_tiny_w2v_bert(str(tmp_path / "enc"), hidden_size=32, num_layers=1)
    overrides = {
        "data_folder": data,
        "encoder_source": encoder_dir,
        "output_folder": str(tmp_path / "run"),
        "languages": ["en"],
        "number_of_epochs": EPOCHS,
        "encoder_lr": 0.002,
        "probe_lr": 0.003,
        "train_dataloader_opts": {"batch_size": 4, "shuffle": True},
        "probe_hidden_dim": 64,
    }
    with open(HPARAMS, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    markup = markup_from_manifests([manifests["train"]])
    encoder = hparams["encoder"]
    probe = hparams["probe"](input_dim=encoder.output_dim, num_symbols=len(markup))
    hparams["checkpointer"].add_recoverable(HEAD, probe)
    sets = make_slu_datasets(
        {"train": manifests["train"], "test": manifests["test"]}, markup, 16000
    )
    brain = SLUBrain(
        modules={"encoder": encoder, HEAD: probe},
        hparams=hparams,
        run_opts={"device": "cpu"},
        checkpointer=None,
        markup=markup,
    )
    test_opts = {"batch_size": 8}
    brain.evaluate(sets["test"], test_loader_kwargs=test_opts)
    before = brain.last_test["metrics"]["COER"]
    brain.fit(
        hparams["epoch_counter"],
        sets["train"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
    )
    brain.evaluate(sets["test"], test_loader_kwargs=test_opts)
    after = brain.last_test["metrics"]["COER"]
    assert after < 0.5 * before, (before, after)
