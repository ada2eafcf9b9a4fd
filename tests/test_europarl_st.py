"""Europarl-ST preparation on a fixture in the release layout, m4a (AAC) audio included."""

import importlib.util
import os

import numpy as np
import pytest
import soundfile as sf

from sense.prepare import PreparationReport, read_manifest

av = pytest.importorskip("av")

RECIPE = os.path.join(os.path.dirname(__file__), "..", "recipes", "EuroparlST", "ZeroST")
RATE = 16000
TALK_SECONDS = 3.0


def _prepare_module():
    spec = importlib.util.spec_from_file_location(
        "_europarl_prepare", os.path.join(RECIPE, "europarl_prepare.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_m4a(path, wav: np.ndarray, rate: int) -> None:
    """Encode a mono float waveform as AAC in an MP4 container (a Europarl-ST talk)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            wav[None].astype(np.float32), format="flt", layout="mono"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in lines))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """en -> fr, de and fr -> en; one talk missing, one segment past its talk's end."""
    root = tmp_path_factory.mktemp("europarl")
    t = np.arange(int(TALK_SECONDS * 44100)) / 44100
    for src, talk in (("en", "talk_en"), ("fr", "talk_fr")):
        os.makedirs(root / src / "audios")
        write_m4a(root / src / "audios" / f"{talk}.m4a", 0.3 * np.sin(2 * np.pi * 300 * t), 44100)
    en = ["the cat sleeps", "a doctor reads", "gone", "too late"]
    lst = ["talk_en 0.00 1.00", "talk_en 1.20 2.50", "missing 0.0 1.0", "talk_en 2.0 9.0"]
    for tgt, text in (
        ("fr", ["le chat dort", "un médecin lit", "parti", "trop tard"]),
        ("de", ["die Katze schläft", "ein Arzt liest", "weg", "zu spät"]),
    ):
        folder = root / "en" / tgt / "test"
        _write(folder / "segments.lst", lst)
        _write(folder / "segments.en", en)
        _write(folder / f"segments.{tgt}", text)
    folder = root / "fr" / "en" / "test"
    _write(folder / "segments.lst", ["talk_fr 0.5 2.0"])
    _write(folder / "segments.fr", ["bonjour"])
    _write(folder / "segments.en", ["hello"])
    return root


def test_prepare_reads_the_release_layout_and_decodes_m4a(release, tmp_path):
    prepare = _prepare_module()
    manifests = prepare.prepare_europarl_st(str(release), str(tmp_path), ["en", "fr", "de"])
    assert sorted(manifests) == ["en-de", "en-fr", "fr-en"]
    rows = read_manifest(manifests["en-fr"])
    assert [r["transcript"] for r in rows] == ["the cat sleeps", "a doctor reads"]
    assert [r["translation"] for r in rows] == ["le chat dort", "un médecin lit"]
    assert {r["language"] for r in rows} == {"eng_Latn"} and rows[0][
        "target_language"
    ] == "fra_Latn"
    wav, rate = sf.read(rows[1]["wav"])
    assert rate == RATE and abs(len(wav) / RATE - 1.3) < 0.01
    assert np.abs(wav).max() > 0.1  # the tone survived AAC encoding and decoding
    de = read_manifest(manifests["en-de"])
    assert [r["wav"] for r in de] == [r["wav"] for r in rows]  # one file per segment
    reasons = {r["item"]: r["reason"] for r in PreparationReport.read(str(tmp_path / "report.tsv"))}
    assert reasons["missing.m4a"] == "no such file"
    assert any("outside its talk" in v for v in reasons.values())
    assert read_manifest(manifests["fr-en"])[0]["translation"] == "hello"


def test_prepare_names_files_whose_line_counts_disagree(release, tmp_path):
    prepare = _prepare_module()
    broken = tmp_path / "broken"
    folder = broken / "en" / "fr" / "test"
    _write(folder / "segments.lst", ["talk_en 0.0 1.0", "talk_en 1.0 2.0"])
    _write(folder / "segments.en", ["one", "two"])
    _write(folder / "segments.fr", ["un"])
    with pytest.raises(ValueError, match=r"segments.fr: 1"):
        prepare.prepare_europarl_st(str(broken), str(tmp_path / "out"), ["en", "fr"])
    with pytest.raises(SystemExit) as exit_info:  # the command line: an error line, status 2
        prepare.main([str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert exit_info.value.code == 2


def test_table1_scores_zerost_and_the_topline_with_one_harness(release, tmp_path):
    """Table 1's shape: one row per system, one column per source language."""
    from transformers import AutoTokenizer, M2M100ForConditionalGeneration

    from sense.testing.tiny import build_tiny_nllb, build_tiny_whisper
    from sense.translation.bleu import BleuTable
    from sense.translation.decoder import Seq2SeqDecoder
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
    assert table.models == ["ZeroST", "NLLB topline"] and sorted(table.languages) == ["en", "fr"]
    expected = (scores[("en", "de")] + scores[("en", "fr")]) / 2
    assert table.value("NLLB topline", "en") == pytest.approx(expected)
    saved = table.save(tmp_path / "table1")
    assert "NLLB topline" in saved[".md"].read_text()
