"""The ZeroST demo hands the recipe its held-out data as a user would, and reads no recipe source.

``sense.demo.zerost`` writes the demo's held-out clips as the recipe's
``eval_manifests`` (a folder of ``<src>-<tgt>_<split>.csv``, the direction
manifests of ``sense.zerost.evaluation``, which the recipe's
``europarl_prepare.py`` writes from Europarl-ST: ``tests/test_europarl_st.py``);
the recipe's ``train.py`` must find exactly those files.
"""

import csv
import os
import re

import numpy as np
import soundfile as sf
from europarl_fixture import recipe_module

from sense.demo.corpus import build_parallel_corpus
from sense.demo.run import DemoConfig
from sense.demo.zerost import NLLB, SPLIT, write_heldout_manifests
from sense.prepare import read_manifest
from sense.zerost.evaluation import DIRECTION_FIELDS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LANGS = ["en", "fr", "de"]
SENTENCES = 12


def _europarl_prepare():
    return recipe_module("europarl_prepare")


def _demo_release(root, corpus) -> None:
    """``<lang>/test.tsv`` and its clips, as the demo's Common Voice release has them."""
    for lang in LANGS:
        os.makedirs(root / lang / "clips")
        with open(root / lang / f"{SPLIT}.tsv", "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
            writer.writerow(["client_id", "path", "sentence", "locale"])
            for i in (1, 4, 7):
                clip = f"common_voice_{lang}_{i:08d}.wav"
                tone = 0.3 * np.sin(np.arange(8000 + 800 * i) * (0.02 + 0.01 * i))
                sf.write(root / lang / "clips" / clip, tone.astype(np.float32), 16000)
                writer.writerow(["speaker", clip, corpus[i][lang], lang])


def test_the_recipe_reads_the_heldout_manifests_the_demo_writes(tmp_path):
    config = DemoConfig(sentences=SENTENCES)
    corpus = build_parallel_corpus(SENTENCES, seed=0)
    _demo_release(tmp_path / "release", corpus)
    folder = tmp_path / "heldout"
    manifests = write_heldout_manifests(str(tmp_path / "release"), str(folder), LANGS, config)
    plan = {"eval_manifests": str(folder), "europarl_folder": None, "europarl_split": SPLIT}
    assert manifests == recipe_module("train").evaluation_manifests(plan)
    assert sorted(manifests) == ["de-en", "de-fr", "en-de", "en-fr", "fr-de", "fr-en"]
    europarl = _europarl_prepare()
    for direction, path in manifests.items():
        src, tgt = direction.split("-")
        assert os.path.basename(path) == f"{direction}_{SPLIT}.csv"
        with open(path, encoding="utf-8") as f:
            assert tuple(next(csv.reader(f))) == DIRECTION_FIELDS
        rows = read_manifest(path)
        assert [(r["transcript"], r["translation"]) for r in rows] == [
            (corpus[i][src], corpus[i][tgt]) for i in (1, 4, 7)
        ]
        assert {r["language"] for r in rows} == {europarl.NLLB_CODES[src]}
        assert {r["target_language"] for r in rows} == {europarl.NLLB_CODES[tgt]}
        for row in rows:
            assert os.path.isabs(row["wav"]) and sf.info(row["wav"]).samplerate == 16000
            assert float(row["duration"]) == round(sf.info(row["wav"]).duration, 3)


def test_the_demo_languages_have_the_recipes_nllb_codes():
    codes = _europarl_prepare().NLLB_CODES
    assert {lang: NLLB[lang] for lang in codes if lang in NLLB} == {
        lang: code for lang, code in codes.items() if lang in NLLB
    }


def test_the_library_executes_no_recipe_file():
    """An installed ``sense`` has no recipes: no module of it may load one as code."""
    loading = re.compile(r"spec_from_file_location|exec_module|runpy|\bexec\(")
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "sense")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    found += [
                        f"{os.path.relpath(path, ROOT)}:{n}"
                        for n, line in enumerate(f, 1)
                        if loading.search(line)
                    ]
    assert not found, found
