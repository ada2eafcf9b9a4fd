"""Europarl-ST preparation on a fixture in the release layout, m4a (AAC) audio included."""

import csv

import numpy as np
import pytest
import soundfile as sf

from sense.prepare import PreparationReport, read_manifest
from sense.zerost.evaluation import DIRECTION_FIELDS, read_direction_manifests

av = pytest.importorskip("av")
from europarl_fixture import (  # noqa: E402
    DE,
    EN,
    FR,
    build_europarl,
    recipe_module,
    write_lines,
)

RATE = 16000


def _prepare_module():
    return recipe_module("europarl_prepare")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return build_europarl(tmp_path_factory.mktemp("europarl"))


def test_prepare_reads_the_release_layout_and_decodes_m4a(release, tmp_path):
    prepare = _prepare_module()
    manifests = prepare.prepare_europarl_st(str(release), str(tmp_path), ["en", "fr", "de"])
    assert sorted(manifests) == ["en-de", "en-fr", "fr-en"]
    assert read_direction_manifests(str(tmp_path)) == manifests  # what train.py reads back
    with open(manifests["en-fr"], encoding="utf-8") as f:
        assert tuple(next(csv.reader(f))) == DIRECTION_FIELDS
    rows = read_manifest(manifests["en-fr"])  # files with a BOM; hostile text, a tab
    assert [r["transcript"] for r in rows] == EN[:2]
    assert [r["translation"] for r in rows] == FR[:2]
    assert {r["language"] for r in rows} == {"eng_Latn"} and rows[0][
        "target_language"
    ] == "fra_Latn"
    wav, rate = sf.read(rows[1]["wav"])
    assert rate == RATE and abs(len(wav) / RATE - 1.3) < 0.01
    assert np.abs(wav).max() > 0.1  # the tone survived AAC encoding and decoding
    de = read_manifest(manifests["en-de"])  # CRLF line ends
    assert [(r["transcript"], r["translation"]) for r in de] == list(zip(EN[:2], DE[:2]))
    assert [r["wav"] for r in de] == [r["wav"] for r in rows]  # one file per segment
    reasons = {r["item"]: r["reason"] for r in PreparationReport.read(str(tmp_path / "report.tsv"))}
    assert reasons["missing.m4a"] == "no such file"
    assert any("outside its talk" in v for v in reasons.values())
    assert read_manifest(manifests["fr-en"])[0]["translation"] == "hello"


def test_prepare_names_files_whose_line_counts_disagree(release, tmp_path):
    prepare = _prepare_module()
    broken = tmp_path / "broken"
    folder = broken / "en" / "fr" / "test"
    write_lines(folder / "segments.lst", ["talk_en 0.0 1.0", "talk_en 1.0 2.0"])
    write_lines(folder / "segments.en", ["one", "two"])
    write_lines(folder / "segments.fr", ["un"])
    with pytest.raises(ValueError, match=r"segments.fr: 1"):
        prepare.prepare_europarl_st(str(broken), str(tmp_path / "out"), ["en", "fr"])
    with pytest.raises(SystemExit) as exit_info:  # the command line: an error line, status 2
        prepare.main([str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert exit_info.value.code == 2


def test_table1_scores_zerost_and_the_topline_with_one_harness(release, tmp_path):
    """Table 1's shape: one row per system, one column per source language."""
    from transformers import AutoTokenizer, M2M100ForConditionalGeneration

    from sense.testing.tiny import build_tiny_nllb, build_tiny_whisper
    from sense.translation.metrics import BleuTable
    from sense.translation.model import Seq2SeqDecoder
    from sense.zerost.evaluation import add_system, nllb_translate_texts, zerost_translate_rows
    from sense.zerost.qformer import build_qformer
    from sense.zerost.speech import AdaptedSpeechEncoder

    prepare = _prepare_module()
    manifests = prepare.prepare_europarl_st(
        str(release), str(tmp_path / "prep"), ["en", "fr", "de"]
    )
    nllb = build_tiny_nllb(str(tmp_path / "nllb"))
    model, tokenizer = (
        M2M100ForConditionalGeneration.from_pretrained(nllb),
        AutoTokenizer.from_pretrained(nllb),
    )
    encoder = AdaptedSpeechEncoder(build_tiny_whisper(str(tmp_path / "whisper")), 32, bottleneck=4)
    qformer = build_qformer("simple", dim=32, num_queries=4)
    decoder = Seq2SeqDecoder(nllb, target_lang="eng_Latn", freeze=True)
    table = BleuTable("Europarl-ST")
    topline, zerost = {}, {}
    for direction, path in manifests.items():
        rows = read_manifest(path)
        src, tgt = direction.split("-")
        refs = [r["translation"] for r in rows]
        texts = nllb_translate_texts(
            model,
            tokenizer,
            [r["transcript"] for r in rows],
            rows[0]["language"],
            rows[0]["target_language"],
            beam_size=1,
            max_new_tokens=4,
        )
        topline[(src, tgt)] = (texts, refs)
        hyps = zerost_translate_rows(encoder.eval(), qformer.eval(), decoder, rows, 2, 2, 4)
        zerost[(src, tgt)] = (hyps, refs)
    add_system(table, "ZeroST", zerost)
    scores = add_system(table, "NLLB topline", topline)
    assert sorted(scores) == [("en", "de"), ("en", "fr"), ("fr", "en")]
    assert table.models == ["ZeroST", "NLLB topline"]
    assert sorted(table.languages) == ["avg", "en", "fr"]
    expected = (scores[("en", "de")] + scores[("en", "fr")]) / 2
    assert table.value("NLLB topline", "en") == pytest.approx(expected)
    saved = table.save(tmp_path / "table1")
    assert "NLLB topline" in saved[".md"].read_text()


def test_evaluate_adds_the_cascade_and_topline_rows(release, tmp_path, capsys):
    """Whisper ASR -> NLLB and ground truth -> NLLB, both by the harness ZeroST uses."""
    from sense.testing.tiny import build_tiny_nllb, build_tiny_whisper_asr
    from sense.translation.metrics import BleuTable

    evaluate = recipe_module("evaluate")
    table = tmp_path / "table1"
    args = [
        str(release),
        f"--prepared={tmp_path / 'prep'}",
        "--languages",
        "en",
        "fr",
        "de",
        f"--table={table}",
        f"--nllb={build_tiny_nllb(str(tmp_path / 'nllb'))}",
        f"--whisper={build_tiny_whisper_asr(str(tmp_path / 'whisper'))}",
        "--beam-size=2",
        "--max-new-tokens=4",
        "--device=cpu",
    ]
    assert evaluate.main(args) == 0
    result = BleuTable.load(table)
    assert result.models == ["NLLB topline", "Whisper-NLLB cascade"]
    assert sorted(result.languages) == ["avg", "en", "fr"]
    assert "Whisper-NLLB cascade" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # neither a release nor manifests
        evaluate.main([f"--table={table}"])
    assert exit_info.value.code == 2
