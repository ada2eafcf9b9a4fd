"""The dual encoder's miniature learns: held-out speech -> transcript R@1 far above chance.

The release is the demo's layout (``heldout.json`` and clips per locale) with
a stand-in for speech that costs no synthesis: each word is a short chord of
two tones chosen by the word, so the audio tokens of a tiny random w2v-BERT
carry the words, and the dual encoder must learn which token runs spell which
text tokens.
"""

import json
import zlib

import numpy as np
import pytest
import soundfile as sf

from sense.demo.commonvoice import CV_COLUMNS
from sense.demo.corpus import build_parallel_corpus, split_corpus
from sense.demo.dual_encoder import MiniatureConfig, run_miniature
from sense.testing.tiny import build_tiny_w2v_bert

pytestmark = pytest.mark.slow

LANGUAGES = ("en", "fr", "ru")
TRAIN_LANGUAGES = ("en", "fr")
MEANINGS, HELDOUT, DEV = 200, 20, 10
MIN_FACTOR = 4  # held-out R@1 at least this many times chance
WORD_SECONDS, SAMPLE_RATE = 0.12, 16000


def _word_audio(word: str) -> np.ndarray:
    seed = zlib.crc32(word.lower().encode())
    f1, f2 = 200 + seed % 1400, 300 + (seed // 1400) % 2500
    t = np.arange(int(WORD_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    return 0.3 * (np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f2 * t)) * np.hanning(len(t))


def _write_release(root, split):
    """``<lang>/train.tsv`` and clips, ``heldout.json`` for dev and test (the demo's layout)."""
    sentences, clips = {}, {lang: {} for lang in LANGUAGES}
    train_rows = {lang: [] for lang in LANGUAGES}
    for part, rows in (("train", split.train), ("dev", split.dev), ("test", split.heldout)):
        for row in rows:
            for lang in LANGUAGES:
                folder = root / lang / "clips"
                folder.mkdir(parents=True, exist_ok=True)
                clip = f"{lang}_{row['id']}.wav"
                audio = np.concatenate([_word_audio(w) for w in row[lang].split()])
                sf.write(str(folder / clip), audio.astype(np.float32), SAMPLE_RATE)
                if part == "train":
                    train_rows[lang].append({"path": clip, "sentence": row[lang]})
                else:
                    sentences.setdefault(row["id"], {})[lang] = row[lang]
                    clips[lang][clip] = row["id"]
    for lang, rows in train_rows.items():
        lines = ["\t".join(CV_COLUMNS)]
        lines += ["\t".join(r.get(c, "") for c in CV_COLUMNS) for r in rows]
        (root / lang / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    splits = {"dev": [r["id"] for r in split.dev], "test": [r["id"] for r in split.heldout]}
    heldout = {
        "languages": list(LANGUAGES),
        "splits": splits,
        "sentences": sentences,
        "clips": clips,
    }
    (root / "heldout.json").write_text(json.dumps(heldout, ensure_ascii=False))


def test_the_miniature_learns_heldout_transcripts(tmp_path):
    split = split_corpus(
        build_parallel_corpus(MEANINGS, seed=0), n_heldout=HELDOUT, n_dev=DEV, seed=0
    )
    _write_release(tmp_path / "cv", split)
    cfg = MiniatureConfig(
        release=str(tmp_path / "cv"),
        speech_encoder=build_tiny_w2v_bert(str(tmp_path / "speech")),
        output=str(tmp_path / "out"),
        languages=LANGUAGES,
        train_languages=TRAIN_LANGUAGES,
        num_tokens=32,
        kmeans_frames=5000,
        hidden_size=32,
        embedding_dim=32,
        epochs=6,
        batch_size=16,
        lr=2e-3,
        bitext_ratios=(0.25,),
        corpus_sentences=MEANINGS,
    )
    results = run_miniature(cfg)["bitext 25%"]
    print((tmp_path / "out" / "results.md").read_text())
    assert set(results) == {"transcript", "en_text"}
    assert set(results["transcript"]) == set(results["en_text"]) == set(LANGUAGES)
    for lang in TRAIN_LANGUAGES:
        assert results["transcript"][lang]["n_query"] == HELDOUT
        assert results["transcript"][lang]["R@1"] >= MIN_FACTOR / HELDOUT, results
