"""The shared SLU entry point on a small synthesized corpus: training, tables, export, SLU, `sense slu`."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from hostile_text import EMOJI, LINE
from speechbrain.utils.metric_stats import ErrorRateStats

from sense.cli import EXIT_ERROR, EXIT_OK, EXIT_SKIPPED, main
from sense.demo.slu import HPARAMS, prepare_demo_slu
from sense.results import ErrorRateTable
from sense.slu.data import read_slu_manifest, write_slu_manifest
from sense.slu.markup import LabelMarkup
from sense.slu.recipe import run

LANGUAGES = ["en", "fr"]


@pytest.fixture(scope="module")
def slu_data(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("slu_data"))
    prepare_demo_slu(folder, LANGUAGES, sentences=16, heldout=3, dev=3)
    _add_hostile_text(folder)
    return folder


def _add_hostile_text(folder: str) -> None:
    """Append hostile text ($5, ${x}, quotes, commas, emoji, RTL) to the first transcript of
    each English split, after its slots: the synthesized corpus's grammar holds none."""
    for split in ("train", "dev", "test"):
        path = os.path.join(folder, "en", f"{split}.csv")
        rows = read_slu_manifest(path)
        rows[0]["transcript"] += f" {LINE}"
        write_slu_manifest(path, rows)


@pytest.fixture(scope="module")
def trained(slu_data, tiny_w2v_bert, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("slu_run"))
    argv = [
        HPARAMS,
        f"--data_folder={slu_data}",
        f"--encoder_source={tiny_w2v_bert}",
        f"--output_folder={out}",
        "--model_name=tiny",
        "--train_language=en",
        f"--languages=[{', '.join(LANGUAGES)}]",
        "--number_of_epochs=1",
        "--skip_prep=True",
        "--device=cpu",
        "--probe_hidden_dim=16",
    ]
    results = run(argv)
    return out, results


def test_prepared_manifests_follow_the_contract(slu_data):
    rows = read_slu_manifest(os.path.join(slu_data, "fr", "train.csv"))
    assert len(rows) == 10
    for row in rows:
        labels = [label for label, _, _ in row["spans"]]
        assert labels[0] in ("person", "time") and "object" in labels
        assert os.path.isfile(row["wav"]) and float(row["duration"]) > 0.5
    # one meaning per id, the same in every language
    en = {r["ID"][3:] for r in read_slu_manifest(os.path.join(slu_data, "en", "test.csv"))}
    fr = {r["ID"][3:] for r in read_slu_manifest(os.path.join(slu_data, "fr", "test.csv"))}
    assert en == fr and len(en) == 3


def _concepts(spans, keep_values):
    """SpeechBrain's tokens of a concept list: labels, or ``label value`` words."""
    return [f"{label} {value}" if keep_values else label for label, value in spans] or [""]


def test_run_writes_per_split_results_and_tables(trained, slu_data):
    out, results = trained
    assert set(results) == {"en-en", "en-fr"}
    for column, result in results.items():
        assert result["num_utterances"] == 3
        assert {"COER", "CVER", "loss"} <= set(result["metrics"])
        with open(os.path.join(out, "results", f"{column}.json"), encoding="utf-8") as f:
            assert json.load(f)["metrics"]["CVER"] == result["metrics"]["CVER"]
        with open(os.path.join(out, "results", f"{column}_predictions.jsonl")) as f:
            predictions = [json.loads(line) for line in f]
        assert len(predictions) == 3 and all("reference" in p for p in predictions)
        # the rates are SpeechBrain's over the labels (COER) and label-value pairs (CVER)
        # of the written predictions
        for metric, keep in (("COER", False), ("CVER", True)):
            stats = ErrorRateStats()
            stats.append(
                [p["id"] for p in predictions],
                [_concepts(p["spans"], keep) for p in predictions],
                [_concepts(p["reference"], keep) for p in predictions],
            )
            assert result["metrics"][metric] == pytest.approx(stats.summarize("error_rate"))
    table = ErrorRateTable.load(os.path.join(out, "results", "table_COER"))
    assert table.models == ["tiny"] and table.pairs == ["en-en", "en-fr"]
    assert table.value("tiny", "en-fr") == pytest.approx(results["en-fr"]["metrics"]["COER"] / 100)
    with open(os.path.join(out, "results", "summary.json")) as f:
        hours = json.load(f)["train_hours"]
    train = read_slu_manifest(os.path.join(slu_data, "en", "train.csv"))
    seconds = sum(sf.info(r["wav"]).duration for r in train)  # the manifest rounds them
    assert hours == pytest.approx(seconds / 3600, rel=1e-3)


def test_hostile_rows_are_read_as_written_and_trained_on(trained, slu_data):
    out, results = trained
    for split in ("train", "dev", "test"):
        rows = read_slu_manifest(os.path.join(slu_data, "en", f"{split}.csv"))
        assert rows[0]["transcript"].endswith(f" {LINE}") and len(rows[0]["spans"]) >= 2
    # the alphabet was built from the training transcripts, hostile characters included
    markup = LabelMarkup.load(os.path.join(out, "save", "markup.json"))
    assert {"$", "{", '"', EMOJI} <= set(markup.symbols)
    assert results["en-en"]["num_utterances"] == 3


def test_markup_and_probe_are_checkpointed(trained):
    out, _ = trained
    ckpts = [d for d in os.listdir(os.path.join(out, "save")) if d.startswith("CKPT+")]
    assert ckpts
    files = os.listdir(os.path.join(out, "save", ckpts[0]))
    assert {"probe.ckpt", "encoder.ckpt", "probe_optimizer.ckpt", "encoder_optimizer.ckpt"} <= set(
        files
    )
    assert os.path.isfile(os.path.join(out, "save", "markup.json"))


@pytest.fixture(scope="module")
def slu_model(trained):
    from sense.slu import SLU

    folder = os.path.join(trained[0], "model")
    return folder, SLU.from_hparams(source=folder, device="cpu")


def test_export_loads_and_decodes(slu_model, slu_data, trained):
    folder, model = slu_model
    assert sorted(model.labels) == ["number", "object", "person", "place", "time"]
    row = read_slu_manifest(os.path.join(slu_data, "en", "test.csv"))[0]
    result = model.predict_file(row["wav"])
    # the exported model hears what the recipe's test stage heard
    with open(os.path.join(trained[0], "results", "en-en_predictions.jsonl")) as f:
        recipe = {p["id"]: p for p in map(json.loads, f)}[row["ID"]]
    assert result.annotated == recipe["annotated"] and result.transcript == recipe["transcript"]
    assert [[s.label, s.value] for s in result.spans] == recipe["spans"]
    for span in result.spans:
        assert 0 <= span.start <= span.end <= result.duration + 1e-6
    batch = model.predict_batch(torch.randn(2, 16000), torch.tensor([1.0, 0.6]))
    assert [r.duration for r in batch] == pytest.approx([1.0, 0.6])


def test_sense_slu_command(slu_model, slu_data, tmp_path, capsys):
    folder, _ = slu_model
    row = read_slu_manifest(os.path.join(slu_data, "en", "test.csv"))[0]
    ogg = tmp_path / "clip.ogg"  # another format, rate and channel count
    wav, rate = sf.read(row["wav"])
    sf.write(ogg, np.stack([wav, wav], axis=1), rate, format="OGG")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio\n")
    inputs = [row["wav"], str(ogg), str(empty), str(tmp_path / "missing.wav"), str(notes)]
    status = main(["slu", "-m", folder, *inputs, "--device", "cpu", "-q"])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert status == EXIT_OK
    assert [line["path"] for line in lines] == [row["wav"], str(ogg)]
    assert {"annotated", "transcript", "spans", "duration"} <= set(lines[0])
    assert "empty.wav: empty file (0 bytes)" in captured.err
    assert "missing.wav: no such file or folder" in captured.err
    assert "notes.txt: not an audio file" in captured.err
    assert "Traceback" not in captured.err
    assert main(["slu", "-m", folder, str(empty), "--strict", "-q"]) == EXIT_ERROR
    assert main(["slu", "-m", folder, row["wav"], str(empty), "--strict", "-q"]) == EXIT_SKIPPED
    capsys.readouterr()
    assert main(["slu", "-m", str(tmp_path / "nope"), row["wav"], "-q"]) == EXIT_ERROR
    assert "sense: error: cannot load the model" in capsys.readouterr().err


def test_demo_summary_has_a_row_per_training_language(trained):
    from sense.demo.slu import SLUDemoConfig, summary_markdown

    out, results = trained
    cfg = SLUDemoConfig(
        output=os.path.join(out, "results"), languages=tuple(LANGUAGES), train_languages=("en",)
    )
    text = summary_markdown(cfg)
    # the tables hold fractions, the summary percent
    cells = [f"{100 * (results[c]['metrics']['COER'] / 100):.1f}" for c in ("en-en", "en-fr")]
    assert f"| en | {' | '.join(cells)} |" in text
    assert not [line for line in text.splitlines() if line.startswith("| fr |")]


def test_demo_rejects_a_training_language_it_does_not_test(capsys):
    from sense.demo.slu import main as demo_main

    with pytest.raises(SystemExit) as exit_info:
        demo_main(["--languages", "en,fr", "--train-languages", "de"])
    assert exit_info.value.code == 2
    assert "--train-languages de not in --languages" in capsys.readouterr().err


def test_demo_trains_by_the_recipe_script(slu_data, tiny_w2v_bert, tmp_path):
    """``train_one`` runs ``python train.py hparams/train.yaml`` and reads back its results."""
    from sense.demo.slu import SLUDemoConfig, summary_markdown, train_one

    os.symlink(slu_data, tmp_path / "data")
    cfg = SLUDemoConfig(
        output=str(tmp_path),
        languages=tuple(LANGUAGES),
        train_languages=("fr",),
        epochs=1,
        extra_overrides=["--probe_hidden_dim=16"],
    )
    results = train_one(cfg, "tiny demo", tiny_w2v_bert, "fr")
    assert set(results) == {"fr-en", "fr-fr"}
    assert all(r["num_utterances"] == 3 for r in results.values())
    assert os.path.isfile(tmp_path / "tiny_demo" / "fr" / "model" / "meta.json")
    coer = f"{results['fr-fr']['metrics']['COER']:.1f}"
    assert f"| {coer} |" in summary_markdown(cfg)
