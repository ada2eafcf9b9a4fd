"""The ZeroST recipe end to end: Common Voice (mp3) -> KD -> NLL -> Europarl-ST (m4a) Table 1."""

import os
import re

import pytest
from cv_fixture import REPO, run_recipe

from sense.prepare import read_manifest
from sense.testing.tiny import build_tiny_nllb, build_tiny_whisper
from sense.translation.metrics import BleuTable

pytest.importorskip("av")
from europarl_fixture import DE, EN, FR, build_europarl  # noqa: E402

RECIPE = os.path.join(REPO, "recipes", "EuroparlST", "ZeroST")
MODEL = "CV-tiny"


def _args(cv, europarl, out, whisper, nllb, step, *extra):
    return [
        "hparams/train.yaml",
        f"--zerost_step={step}",
        f"--data_folder={cv}",
        f"--europarl_folder={europarl}",
        f"--experiment_folder={out}",
        f"--prepared_folder={out}/data",
        f"--europarl_prepared={out}/europarl",
        f"--table1={out}/table1",
        f"--table2={out}/table2",
        f"--model_name={MODEL}",
        "--languages=[fr, de, ru]",
        "--eval_languages=[en, fr, de]",
        f"--speech_source={whisper}",
        f"--nllb_source={nllb}",
        "--d_model=32",
        "--num_queries=4",
        "--number_of_epochs=2",
        "--batch_seconds=4",
        "--lr=0.003",
        "--eval_beam_size=2",
        "--max_new_tokens=4",
        "--prepare_workers=1",
        "--num_workers=0",
        "--device=cpu",
        *extra,
    ]


@pytest.fixture(scope="module")
def runs(cv_release, tmp_path_factory):
    """The KD step, then the NLL step from its best checkpoint."""
    root = tmp_path_factory.mktemp("zerost_recipe")
    europarl = build_europarl(root / "europarl")
    whisper = build_tiny_whisper(str(root / "whisper"))
    nllb = build_tiny_nllb(str(root / "nllb"))
    out = str(root / "run")
    procs = {}
    for step in ("kd", "nll"):
        proc = run_recipe(_args(cv_release[0], europarl, out, whisper, nllb, step), recipe=RECIPE)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        procs[step] = proc
    return out, procs, cv_release[1]


@pytest.mark.slow
def test_kd_then_nll_train_and_fill_tables_1_and_2(runs):
    out, procs, info = runs
    train = read_manifest(os.path.join(out, "data", "zerost_train.csv"))
    assert len(train) == info["good"]["train"]
    assert {r["language"] for r in train} == {"fra_Latn", "deu_Latn", "rus_Cyrl"}
    # hostile text ($5, ${x}, quotes, emoji, RTL; a tab, a BOM, CRLF in Europarl-ST) kept as released
    valid = read_manifest(os.path.join(out, "data", "zerost_dev.csv"))
    assert {r["ID"]: r["transcript"] for r in train + valid} == info["transcripts"]
    for direction, src, tgt in (("en-fr", EN, FR), ("en-de", EN, DE)):
        rows = read_manifest(os.path.join(out, "europarl", f"{direction}_test.csv"))
        assert [(r["transcript"], r["translation"]) for r in rows] == list(zip(src, tgt))[:2]
    # the teacher cache was built in the KD step, one matrix per transcript
    cache = os.path.join(out, "data", "nllb_tokens")
    (key,) = os.listdir(cache)
    assert os.path.isfile(os.path.join(cache, key, "index.json"))
    for step in ("kd", "nll"):
        with open(os.path.join(out, step, "train_log.txt"), encoding="utf-8") as f:
            log = f.read()
        assert log.count("valid loss:") == 2, log
        # the three-phase schedule moved the rates: warm-up, then decay by the end
        lrs = [float(x) for x in re.findall(r"lr_encoder: ([0-9.e-]+)", log)]
        assert len(lrs) == 2 and lrs[0] != lrs[1], log
    assert "starting from the KD checkpoint" in procs["nll"].stderr + procs["nll"].stdout
    table1 = BleuTable.load(os.path.join(out, "table1"))
    assert table1.models == [f"{MODEL} KD", f"{MODEL} KD→NLL"]
    assert sorted(table1.languages) == ["avg", "en", "fr"]
    table2 = BleuTable.load(os.path.join(out, "table2"))
    assert table2.languages == ["4"] and len(table2.models) == 2
    with open(os.path.join(out, "nll", "europarl_bleu.tsv"), encoding="utf-8") as f:
        assert [line.split("\t")[0] for line in f] == ["en-de", "en-fr", "fr-en"]


@pytest.mark.slow
def test_the_nll_step_exports_a_translator_into_any_nllb_language(runs):
    from transformers import M2M100ForConditionalGeneration

    from sense.translation.inference import load_translator
    from sense.zerost.inference import ZeroSTTranslator

    out, _, _ = runs
    model = load_translator(os.path.join(out, "nll", "model"), device="cpu")
    assert isinstance(model, ZeroSTTranslator)
    assert not os.path.exists(os.path.join(out, "kd", "model"))  # KD alone is a baseline
    clip = read_manifest(os.path.join(out, "europarl", "en-fr_test.csv"))[0]["wav"]
    calls = []
    generate = M2M100ForConditionalGeneration.generate

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return generate(self, *args, **kwargs)

    wav = model.load_audio(clip)
    for lang in ("fra_Latn", "ita_Latn"):  # Italian: a language it never saw
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(M2M100ForConditionalGeneration, "generate", spy)
            text = model.translate_file(clip, target_lang=lang, beam_size=1)
        # searched greedily with the language forced first; the default language is kept
        lang_id = model.mods.decoder.language_id(lang)
        assert (calls[-1]["num_beams"], calls[-1]["forced_bos_token_id"]) == (1, lang_id)
        assert text == model.translate_batch(wav, target_lang=lang, beam_size=1)[0]
        assert model.mods.decoder.target_lang == model.hparams.target_lang
