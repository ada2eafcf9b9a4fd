"""SLU data preparation (SLURP, MSNER, Speech-MASSIVE, TARIC-SLU) on tiny releases.

Each test writes a release in its real layout (tests/slu_fixtures.py) with
known bad rows, runs the recipe's prepare script and checks the manifests
(rows, transcripts, spans), what was left out and why, and that a second run
with the same settings does nothing.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys

import pytest
import slu_fixtures
import soundfile as sf
import torch
from speechbrain.utils.epoch_loop import EpochCounter
from speechbrain.utils.train_logger import FileTrainLogger

from sense.lobes.speech import HFSpeechEncoder
from sense.nnet.heads import CTCProbe
from sense.prepare import PreparationReport, read_manifest
from sense.slu.brain import HEAD, SLUBrain
from sense.slu.data import SLU_FIELDS, make_slu_datasets, markup_from_manifests, parse_spans
from sense.slu.prepare import (
    MarkupError,
    clean_spans,
    parse_bracket_markup,
    parse_concept_markup,
    spans_from_tokens,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(REPO, "recipes")


def _load(folder: str, script: str):
    path = os.path.join(RECIPES, folder, f"{script}.py")
    spec = importlib.util.spec_from_file_location(f"_slu_{script}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_prepared(paths: dict, expected: dict, rows_key: str = "rows") -> dict:
    """Manifests hold the expected rows with valid spans; the report the expected reasons."""
    manifests = {split: read_manifest(path) for split, path in paths.items()}
    assert {s: len(rows) for s, rows in manifests.items()} == expected[rows_key]
    for rows in manifests.values():
        for row in rows:
            assert tuple(row) == SLU_FIELDS
            assert row["transcript"] and os.path.isfile(row["wav"])
            # the duration is the clip's own (written to the millisecond)
            assert float(row["duration"]) == pytest.approx(sf.info(row["wav"]).duration, abs=1e-3)
            clean_spans(row["transcript"], parse_spans(row["spans"], row["transcript"], row["ID"]))
    split, transcript, spans = expected["example"]
    found = [r for r in manifests[split] if r["transcript"] == transcript]
    assert found, f"{transcript!r} not in {split}"
    assert parse_spans(found[0]["spans"], transcript, split) == spans
    for split, transcript in expected["hostile"]:  # $5, ${x}, quotes, emoji, RTL, BOM, CRLF
        assert transcript in [r["transcript"] for r in manifests[split]], (split, transcript)
    _check_datasets(paths, manifests)
    report = PreparationReport.read(os.path.join(os.path.dirname(paths["train"]), "dropped.tsv"))
    for item, reason in expected["bad"].items():
        hits = [r for r in report if item in r["item"]]
        assert hits, f"{item} not reported: {report}"
        assert reason in hits[0]["reason"], hits[0]
    assert len(report) == len(expected["bad"]), report
    return manifests


def _check_datasets(paths: dict, manifests: dict) -> None:
    """The datasets training reads serve every row: its audio, its target, its text as written."""
    datasets = make_slu_datasets(paths, markup_from_manifests([paths["train"]]))
    for split, data in datasets.items():
        items = [data[i] for i in range(len(data))]
        assert [(i["id"], i["transcript"]) for i in items] == [
            (r["ID"], r["transcript"]) for r in manifests[split]
        ]
        assert all(i["sig"].numel() and i["tokens"].numel() for i in items)


def _train_one_epoch(paths: dict, encoder_source: str, folder: str) -> None:
    """What the recipes' training (sense.slu.recipe.run) does with the prepared train set, for
    one epoch of tiny steps: every row is read, encoded and takes part in a step."""
    markup = markup_from_manifests([paths["train"]])
    train = make_slu_datasets({"train": paths["train"]}, markup)["train"]
    encoder = HFSpeechEncoder(encoder_source)
    probe = CTCProbe(encoder.output_dim, len(markup), hidden_dim=8)
    before = [p.detach().clone() for p in probe.parameters()]
    counter = EpochCounter(1)
    hparams = {
        "encoder_opt_class": functools.partial(torch.optim.Adam, lr=1e-3),
        "probe_opt_class": functools.partial(torch.optim.Adam, lr=1e-3),
        "epoch_counter": counter,
        "train_logger": FileTrainLogger(os.path.join(folder, "train_log.txt")),
    }
    brain = SLUBrain(
        modules={"encoder": encoder, HEAD: probe},
        hparams=hparams,
        run_opts={"device": "cpu", "noprogressbar": True},
        markup=markup,
    )
    brain.fit(counter, train, train_loader_kwargs={"batch_size": 2})
    assert brain.optimizer_step == (len(train) + 1) // 2
    assert any(not torch.equal(a, b) for a, b in zip(before, probe.parameters()))


# ---------------------------------------------------------------- markup


def test_bracket_markup():
    text, spans = parse_bracket_markup("  set [time : seven  am ]alarm [date:today].")
    assert text == "set seven amalarm today."
    assert [text[b:e] for _, b, e in spans] == ["seven am", "today"]
    assert parse_bracket_markup("no slots here") == ("no slots here", [])
    for bad, why in [
        ("a [time : b", "unclosed"),
        ("a ] b", "unmatched"),
        ("a [x : [y : b]]", "nested"),
        ("a [time b]", "no ':'"),
        ("a [ : b]", "empty type"),
        ("a [time : ] b", "empty filler"),
    ]:
        with pytest.raises(MarkupError, match=why):
            parse_bracket_markup(bad)


def test_spans_checks_and_tokens():
    with pytest.raises(MarkupError, match="overlap"):
        clean_spans("abcdef", [["x", 0, 3], ["y", 2, 4]])
    with pytest.raises(MarkupError, match="space"):
        clean_spans("ab cd", [["x", 1, 3]])
    with pytest.raises(MarkupError, match="outside"):
        clean_spans("ab", [["x", 1, 3]])
    tokens = [" Je", " vois", " l", "'", "Union", " européenne", "."]
    text, spans = spans_from_tokens(tokens, [("org", [4, 5]), ("x", [1])])
    assert text == "Je vois l'Union européenne."
    assert [(lab, text[b:e]) for lab, b, e in spans] == [("x", "vois"), ("org", "Union européenne")]
    with pytest.raises(MarkupError, match="consecutive"):
        spans_from_tokens(tokens, [("org", [4, 6])])
    with pytest.raises(MarkupError, match="outside"):
        spans_from_tokens(tokens, [("org", [9])])


# ---------------------------------------------------------------- SLURP


def test_prepare_slurp(tmp_path):
    expected = slu_fixtures.build_slurp(str(tmp_path / "slurp"))
    prep = _load(os.path.join("SLURP", "SLU"), "prepare_slurp")
    out = str(tmp_path / "prepared")
    paths = prep.prepare_slurp(str(tmp_path / "slurp"), out)
    manifests = _check_prepared(paths, expected)
    assert all(r["language"] == "en" for r in manifests["train"])
    # resumable: same settings, nothing is redone
    stamp = os.path.getmtime(paths["train"])
    assert prep.prepare_slurp(str(tmp_path / "slurp"), out) == paths
    assert os.path.getmtime(paths["train"]) == stamp
    # close-talk microphone only
    headset = prep.prepare_slurp(str(tmp_path / "slurp"), out, recordings="headset")
    counts = {s: len(read_manifest(p)) for s, p in headset.items()}
    assert counts == expected["rows_headset"]
    assert all("-headset" in r["wav"] for r in read_manifest(headset["train"]))
    # synthetic speech joined to the training set
    both = prep.prepare_slurp(
        str(tmp_path / "slurp"), out, train_splits=["train", "train_synthetic"]
    )
    counts = {s: len(read_manifest(p)) for s, p in both.items()}
    assert counts == expected["rows_with_synthetic"]
    with pytest.raises(ValueError, match="recordings"):
        prep.prepare_slurp(str(tmp_path / "slurp"), out, recordings="lapel")


# ---------------------------------------------------------------- MSNER


def test_prepare_msner(tmp_path, tiny_w2v_bert):
    expected = slu_fixtures.build_msner(str(tmp_path))
    prep = _load(os.path.join("MSNER", "NER"), "prepare_msner")
    msner, vox, out = str(tmp_path / "msner"), str(tmp_path / "voxpopuli"), str(tmp_path / "prep")
    paths = prep.prepare_msner(msner, vox, out)
    assert sorted(paths) == sorted(expected["languages"])
    _check_prepared(paths["fr"], expected, "rows_fr")
    _train_one_epoch(paths["fr"], tiny_w2v_bert, str(tmp_path))
    for lang in ("nl", "es", "de"):
        manifests = _check_prepared(
            paths[lang], dict(expected, bad={}, example=("dev",) + _any(paths[lang]), hostile=[])
        )
        assert {r["language"] for rows in manifests.values() for r in rows} == {lang}
        labels = {s[0] for r in manifests["train"] for s in json.loads(r["spans"])}
        assert labels == {"geopolitical_area", "organization"}  # "geopolitical area" normalised
    # the 8-type variant reads the -combined files (test only in this release)
    combined = prep.prepare_msner(
        msner, vox, str(tmp_path / "prep8"), languages=["fr"], variant="combined", splits=["test"]
    )
    rows = read_manifest(combined["fr"]["test"])
    _, transcript, spans = expected["example_test_combined"]
    assert [(r["transcript"], json.loads(r["spans"])) for r in rows] == [(transcript, spans)]
    with pytest.raises(FileNotFoundError, match="combined annotation of fr train"):
        prep.prepare_msner(
            msner, vox, str(tmp_path / "prep8"), languages=["fr"], variant="combined"
        )
    # resumable
    stamp = os.path.getmtime(paths["nl"]["train"])
    assert prep.prepare_msner(msner, vox, out) == paths
    assert os.path.getmtime(paths["nl"]["train"]) == stamp


def _any(paths: dict) -> tuple:
    """(transcript, spans) of the first dev row: a self-consistency example."""
    row = read_manifest(paths["dev"])[0]
    return row["transcript"], json.loads(row["spans"])


# ---------------------------------------------------------------- Speech-MASSIVE


def test_prepare_speech_massive(tmp_path, tiny_w2v_bert):
    expected = slu_fixtures.build_speech_massive(str(tmp_path))
    prep = _load(os.path.join("SpeechMASSIVE", "SLU"), "prepare_speech_massive")
    out = str(tmp_path / "prep")
    paths = prep.prepare_speech_massive(expected["data"], out, test_folder=expected["test"])
    manifests = _check_prepared(paths, expected)
    _train_one_epoch(paths, tiny_w2v_bert, str(tmp_path))
    for rows in manifests.values():
        for row in rows:  # converted to 16 kHz mono FLAC
            info = sf.info(row["wav"])
            assert (info.format, info.samplerate, info.channels) == ("FLAC", 16000, 1)
    assert not os.listdir(os.path.join(out, ".raw", "train"))  # staging emptied
    stamp = os.path.getmtime(paths["train"])
    assert prep.prepare_speech_massive(expected["data"], out, test_folder=expected["test"]) == paths
    assert os.path.getmtime(paths["train"]) == stamp
    # few-shot train split, reported prompts left out
    few = prep.prepare_speech_massive(
        expected["data"],
        str(tmp_path / "few"),
        test_folder=expected["test"],
        train_split="train_115",
        skip_reported=True,
    )
    assert {s: len(read_manifest(p)) for s, p in few.items()} == expected["rows_few_shot"]
    report = PreparationReport.read(str(tmp_path / "few" / "dropped.tsv"))
    assert [r["reason"] for r in report] == ["transcript reported by the speaker"]
    with pytest.raises(FileNotFoundError, match="test-"):
        prep.prepare_speech_massive(
            expected["data"], str(tmp_path / "x"), test_folder=str(tmp_path)
        )


# ---------------------------------------------------------------- TARIC-SLU


def test_concept_markup():
    text, spans = parse_concept_markup("a <x> b c > d <y> e>")
    assert text == "a b c d e" and [(lab, text[b:e]) for lab, b, e in spans] == [
        ("x", "b c"),
        ("y", "e"),
    ]
    for bad, why in [
        ("<x> a <y> b > >", "opened inside"),
        ("a >", "closes no concept"),
        ("<x> >", "no words"),
        ("<x> a", "never closed"),
    ]:
        with pytest.raises(MarkupError, match=why):
            parse_concept_markup(bad)


def test_prepare_taric(tmp_path, tiny_w2v_bert):
    expected = slu_fixtures.build_taric(str(tmp_path / "taric"))
    prep = _load(os.path.join("TARIC", "SLU"), "prepare_taric")
    out = str(tmp_path / "prep")
    paths = prep.prepare_taric(str(tmp_path / "taric"), out)
    manifests = _check_prepared(paths, expected)
    _train_one_epoch(paths, tiny_w2v_bert, str(tmp_path))
    assert {r["language"] for r in manifests["train"]} == {"aeb"}
    stamp = os.path.getmtime(paths["train"])
    assert prep.prepare_taric(str(tmp_path / "taric"), out) == paths
    assert os.path.getmtime(paths["train"]) == stamp
    with pytest.raises(ValueError, match="lacks annotation"):
        prep.prepare_taric(
            str(tmp_path / "taric"), str(tmp_path / "p2"), annotation_column="annotation"
        )


# ---------------------------------------------------------------- end to end


def _recipe_main(folder: str):
    """A recipe's train.py as a module, its folder importable (its prepare script)."""
    path = os.path.join(RECIPES, folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    return _load(folder, "train")


@pytest.mark.slow
def test_slurp_recipe_end_to_end(tmp_path, tiny_w2v_bert):
    """Release -> manifests -> one epoch with a tiny encoder -> Table VII-shaped tables, export."""
    expected = slu_fixtures.build_slurp(str(tmp_path / "slurp"))
    train = _recipe_main(os.path.join("SLURP", "SLU"))
    out, table = tmp_path / "out", tmp_path / "tables" / "table"
    argv = [
        os.path.join(RECIPES, "SLURP", "SLU", "hparams", "train.yaml"),
        f"--data_folder={tmp_path / 'slurp'}",
        f"--output_folder={out}",
        f"--prepared_folder={out / 'data'}",
        f"--results_table={table}",
        f"--encoder_source={tiny_w2v_bert}",
        "--model_name=tiny",
        "--number_of_epochs=1",
        "--slu={probe_hidden: 16, num_workers: 0}",
        "--device=cpu",
    ]
    results = train.run(argv, prepare=train.prepare)
    assert results["SLURP"]["num_utterances"] == expected["rows"]["test"]
    for split, transcript in expected["hostile"]:  # trained and validated on, as released
        assert transcript in [
            r["transcript"] for r in read_manifest(str(out / "data" / f"{split}.csv"))
        ]
    assert set(results["SLURP"]["metrics"]) >= {"COER", "CVER", "slu_f1"}
    for metric in ("COER", "CVER"):
        rows = json.loads((tmp_path / "tables" / f"table_{metric}.json").read_text())
        assert "tiny" in json.dumps(rows) and "SLURP" in json.dumps(rows)
    summary = json.loads((out / "results" / "summary.json").read_text())
    assert summary["train_hours"] == pytest.approx(
        sum(float(r["duration"]) for r in read_manifest(str(out / "data" / "train.csv"))) / 3600
    )
    assert os.path.isfile(out / "data" / "dropped.tsv")
    assert os.path.isdir(out / "model")


# ---------------------------------------------------------------- Tables V and VII


def test_paper_tables_and_writer(tmp_path):
    """The paper's numbers kept by the recipes, and our tables merged beside them."""
    from sense.results import ErrorRateTable
    from sense.slu.tables import main, paper_rows

    table_v = paper_rows([os.path.join(RECIPES, "MSNER", "NER", "paper_table_v.json")], "SENSE")
    assert {k: len(v) for k, v in table_v.items()} == {"nl": 4, "es": 4, "fr": 4, "de": 4}
    assert table_v["es"]["fr"] == 35.94 and table_v["de"]["fr"] == 42.55  # quoted in the text
    papers = [
        os.path.join(RECIPES, *folder, "paper_table_vii.json")
        for folder in (("SpeechMASSIVE", "SLU"), ("SLURP", "SLU"), ("TARIC", "SLU"))
    ]
    cver = paper_rows(papers, "CVER")
    assert cver["SENSE"] == {"Speech-MASSIVE": 59.46, "SLURP": 38.98, "TARIC": 45.78}
    # two runs' tables (as sense.slu.recipe.run writes them), merged with the paper's rows
    stems = []
    for column, value in (("SLURP", 0.5), ("TARIC", 0.25)):
        table = ErrorRateTable(metric="CVER")
        table.add("SENSE", column, {"CVER": value}, n_query=3)
        stems.append(str(tmp_path / column / "table"))
        table.save(stems[-1] + "_CVER")
    merged = main(["--metric", "CVER", "--paper", *papers, "--out", str(tmp_path / "vii"), *stems])
    assert merged.value("SENSE", "TARIC") == 0.25
    assert merged.value("SENSE (paper)", "SLURP") == pytest.approx(0.3898)
    text = (tmp_path / "vii.md").read_text()
    assert "SONAR (paper)" in text and "Speech-MASSIVE" in text
    assert os.path.isfile(tmp_path / "vii.csv") and os.path.isfile(tmp_path / "vii.json")
