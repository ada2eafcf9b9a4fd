"""Retrieval benchmark recipes on tiny releases in their real layouts.

Each recipe test writes a few real audio files (ogg, wav, flac) and text files
laid out exactly as the release is, runs the recipe's ``evaluate.py`` in
process with a tiny SENSE model folder (tiny w2v-BERT + attentive pooling +
tiny XLM-R teacher, written by ``sense.export.export_model``), and checks the
table, the database sizes and what was left out. The VoxPopuli fixture pairs
each utterance with a byte copy of itself, so R@1 = 1.0 is known by
construction.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from sense.evaluation import (
    AudioItem,
    EmbeddingCache,
    PrepReport,
    SENSEEncoder,
    SONAREncoder,
    audio_entry,
    build_encoder,
    build_encoders,
    embed_manifest,
    evaluate_pair,
    load_pair,
    run_benchmark,
    text_entry,
    write_pair,
)
from sense.prepare import PreparationReport
from sense.results import GROUP_ROW, QUERY_ROW, SEARCH_ROW, RetrievalTable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(REPO, "recipes")
RATE = 16000


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _clip(seed: int, seconds: float) -> np.ndarray:
    """A distinct, deterministic sound: three tones and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    freqs = rng.uniform(120, 2000, size=3)
    wav = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in freqs) / 6
    return (wav + 0.05 * rng.standard_normal(t.shape)).astype("float32")


def _write_audio(path: str, wav: np.ndarray, **kwargs) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, wav, RATE, **kwargs)
    return path


def _write_lines(path: str, lines) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def _load_recipe(dataset: str, script: str = "evaluate"):
    """A script of the recipe as a module (unique name: every recipe has an evaluate.py)."""
    path = os.path.join(RECIPES, dataset, "retrieval", f"{script}.py")
    spec = importlib.util.spec_from_file_location(f"_retrieval_{dataset}_{script}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(dataset: str, data: str, out: str, models: str, *overrides: str) -> dict:
    hparams = os.path.join(RECIPES, dataset, "retrieval", "hparams", "evaluate.yaml")
    argv = [hparams, f"--data_folder={data}", f"--output_folder={out}", f"--models={models}"]
    return _load_recipe(dataset).main(argv + list(overrides))


def _dropped(out: str, pair: str) -> list[dict]:
    return PreparationReport.read(os.path.join(out, "manifests", pair, "dropped.tsv"))


def _check_table(path: str, models: list[str], sizes: dict[str, tuple[int, int]]) -> RetrievalTable:
    """Shape, database sizes and score range of a saved table."""
    for suffix in (".md", ".csv", ".json"):
        assert os.path.isfile(path + suffix), path + suffix
    table = RetrievalTable.load(path)
    assert table.models == models
    assert table.pairs == list(sizes)
    assert table.shape == (len(models), len(sizes))
    # the printed grid: one row per model, then the two database-size rows
    with open(path + ".csv", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r[0] != GROUP_ROW]
    assert rows[0] == [table.metric, *sizes]
    assert [r[0] for r in rows[1:]] == [*models, QUERY_ROW, SEARCH_ROW]
    assert rows[-2][1:] == [str(q) for q, _ in sizes.values()]
    assert rows[-1][1:] == [str(s) for _, s in sizes.values()]
    for pair, expected in sizes.items():
        assert table.sizes(pair) == expected, pair
        for model in models:
            for metric in ("R@1", "R@5", "R@10", "MRR"):
                assert 0.0 <= table.value(model, pair, metric) <= 1.0
    return table


@pytest.fixture(scope="module")
def sense_folder(tiny_w2v_bert, tiny_xlmr, tmp_path_factory):
    """A tiny SENSE model folder: tiny w2v-BERT, attentive pooling, tiny XLM-R teacher."""
    from sense.export import export_model
    from sense.lobes.speech import HFSpeechEncoder
    from sense.nnet.pooling import AttentivePooling

    torch.manual_seed(0)
    encoder = HFSpeechEncoder(tiny_w2v_bert)
    pooling = AttentivePooling(encoder.output_dim)
    folder = str(tmp_path_factory.mktemp("models") / "tiny-sense")
    return export_model(folder, encoder, pooling, teacher=tiny_xlmr)


class CountingEncoder:
    """A plug-in encoder (the Encoder protocol): fixed random projections of
    simple signal statistics; counts what it is asked to embed."""

    def __init__(self, name: str = "counting", dim: int = 8):
        self.name = name
        self.identity = f"counting:{name}:{dim}"
        self.dim = dim
        self.audio_calls: list[AudioItem] = []
        self.text_calls: list[str] = []

    def encode_audio(self, items):
        self.audio_calls.extend(items)
        out = []
        for item in items:
            wav = item.load()
            spec = torch.fft.rfft(wav[:4096], n=4096).abs()[: 8 * self.dim]
            out.append(spec.reshape(self.dim, -1).sum(1))
        return torch.stack(out)

    def encode_text(self, texts, lang=None):
        self.text_calls.extend(texts)
        return torch.stack(
            [torch.tensor([float(ord(c)) for c in (t[::-1] * self.dim)[: self.dim]]) for t in texts]
        )


# ---------------------------------------------------------------------------
# Release builders (the real layouts, tiny)
# ---------------------------------------------------------------------------

VOX_SESSION = "20180312-0900-PLENARY-15"


def build_voxpopuli(root: str) -> dict:
    """``transcribed_data`` as voxpopuli.get_asr_data + get_s2s_data write it.

    Every interpretation segment is a byte copy of the utterance it is paired
    with (the source for fr->en and en->fr, the other interpretation for the
    pivot fr-de), so the right answer is the only identical recording.
    Broken on purpose: in fr->en, one source file is missing and one row's
    interpretation is missing; in en->de one English utterance has no
    interpretation (so fr-de loses it) and one row is malformed.
    """
    year = VOX_SESSION[:4]
    base = os.path.join(root, "transcribed_data")

    def write_s2s(src, tgt, rows, extra_lines=()):
        lines = ["src_id\tsrc_text\tsrc_speaker_id\ttgt_id\ttgt_text"]
        lines += ["\t".join([s, f"text of {s}", "spk1", t, ""]) for s, t in rows]
        _write_lines(os.path.join(base, src, tgt, "s2s.tsv"), lines + list(extra_lines))

    # fr -> en: 6 rows, source speech in transcribed_data/fr/<year>/
    rows = []
    for i in range(6):
        src_id = f"{VOX_SESSION}-fr_{VOX_SESSION}-{i}"
        tgt_id = f"{VOX_SESSION}-en_{VOX_SESSION}-{i}"
        wav = _clip(10 + i, 0.5 + 0.1 * i)
        if i != 4:  # source audio missing
            _write_audio(os.path.join(base, "fr", year, src_id + ".ogg"), wav, format="OGG")
        if i != 5:  # interpretation missing
            src_file = os.path.join(base, "fr", year, src_id + ".ogg")
            dst = os.path.join(base, "fr", "en", year, tgt_id + ".ogg")
            if os.path.exists(src_file):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(src_file, dst)
            else:
                _write_audio(dst, wav, format="OGG")
        rows.append((src_id, tgt_id))
    write_s2s("fr", "en", rows)

    # en -> fr and en -> de: interpretations of 5 English utterances
    en_ids = [f"{VOX_SESSION}-en_{VOX_SESSION}-{i}" for i in range(5)]
    for i, en_id in enumerate(en_ids):
        _write_audio(
            os.path.join(base, "en", year, en_id + ".ogg"), _clip(50 + i, 0.6), format="OGG"
        )
    fr_rows, de_rows = [], []
    for i, en_id in enumerate(en_ids):
        fr_id = f"{VOX_SESSION}-fr_{VOX_SESSION}-{i}"
        de_id = f"{VOX_SESSION}-de_{VOX_SESSION}-{i}"
        fr_path = os.path.join(base, "en", "fr", year, fr_id + ".ogg")
        os.makedirs(os.path.dirname(fr_path), exist_ok=True)
        # en->fr: the interpretation is the English utterance itself
        shutil.copyfile(os.path.join(base, "en", year, en_id + ".ogg"), fr_path)
        fr_rows.append((en_id, fr_id))
        if i == 2:
            continue  # no German interpretation of utterance 2
        de_path = os.path.join(base, "en", "de", year, de_id + ".ogg")
        os.makedirs(os.path.dirname(de_path), exist_ok=True)
        shutil.copyfile(fr_path, de_path)  # fr-de: the same recording
        de_rows.append((en_id, de_id))
    write_s2s("en", "fr", fr_rows)
    write_s2s("en", "de", de_rows, extra_lines=["malformed line without tabs"])
    return {"fr-en": (4, 4), "en-fr": (5, 5), "fr-de": (4, 4)}


def build_talks(root: str, pair: str, splits: dict, ext: str, yaml_wav_ext: bool, seed: int):
    """A MUST-C / mTEDx pair: ``<pair>/data/<split>/{wav/<talk><ext>, txt/<split>.*}``.

    ``splits`` maps a split to a list of talks; a talk is a list of segments
    ``(src text, tgt text)``; the talk recording is the segments one after
    the other, 0.2 s apart. A talk named ``missing-*`` gets no recording.
    A segment whose tgt text is ``None`` gets an empty translation line, one
    whose src text starts with ``PAST-END`` runs 5 s past the end of the talk.
    """
    src, tgt = pair.split("-")
    for split, talks in splits.items():
        split_dir = os.path.join(root, pair, "data", split)
        yaml_lines, src_lines, tgt_lines = [], [], []
        for t, (talk, segments) in enumerate(talks.items()):
            offset, pieces = 0.2, [np.zeros(int(0.2 * RATE), dtype="float32")]
            for s, (src_text, tgt_text) in enumerate(segments):
                duration = 0.5 + 0.1 * ((s + t) % 3)
                pieces += [_clip(seed + 100 * t + s, duration), np.zeros(int(0.2 * RATE), "f4")]
                shown = duration + 5.0 if src_text.startswith("PAST-END") else duration
                wav_field = talk + ext if yaml_wav_ext else talk
                yaml_lines.append(
                    f"- {{duration: {shown:.6f}, offset: {offset:.6f}, rW: 3, uW: 0, "
                    f"speaker_id: spk.{t}, wav: {wav_field}}}"
                )
                src_lines.append(src_text)
                tgt_lines.append(tgt_text or "")
                offset += duration + 0.2
            if not talk.startswith("missing"):
                _write_audio(os.path.join(split_dir, "wav", talk + ext), np.concatenate(pieces))
        txt = os.path.join(split_dir, "txt")
        _write_lines(os.path.join(txt, f"{split}.yaml"), yaml_lines)
        _write_lines(os.path.join(txt, f"{split}.{src}"), src_lines)
        _write_lines(os.path.join(txt, f"{split}.{tgt}"), tgt_lines)


def build_fleurs(root: str) -> None:
    """``<lang>/{dev,test}.tsv`` (7 columns, no header) and ``<lang>/audio/<split>/*.wav``.

    Sentence ids 1-4; fr has two recordings of ids 1 and 2 (for id 1 the file
    that sorts first is missing, so the other is used), and id 4, which no
    other language has. en has ids 1-3 in test; de has id 3 only in dev.
    """
    sentences = {
        "en_us": {"test": {"1": "The cat sleeps.", "2": "It rains.", "3": "A red sofa."}},
        "de_de": {
            "test": {"1": "Die Katze schläft.", "2": "Es regnet."},
            "dev": {"3": "Ein rotes Sofa."},
        },
        "fr_fr": {
            "test": {"1": "Le chat dort.", "2": "Il pleut.", "3": "Un canapé rouge.", "4": "Seul."}
        },
    }
    seed = 0
    for lang, splits in sentences.items():
        for split, by_id in splits.items():
            rows = []
            for sid, text in by_id.items():
                takes = 2 if lang == "fr_fr" and sid in ("1", "2") else 1
                for take in range(takes):
                    seed += 1
                    name = f"{sid}{take}{seed:04d}.wav"
                    wav = _clip(200 + seed, 0.5 + 0.1 * take)
                    if not (lang == "fr_fr" and sid == "1" and take == 0):
                        _write_audio(os.path.join(root, lang, "audio", split, name), wav)
                    cols = [sid, name, text, text.lower().strip("."), "c h a r s", str(len(wav))]
                    rows.append("\t".join([*cols, "FEMALE"]))
            # TSV order is not file-name order: the choice must not depend on it
            _write_lines(os.path.join(root, lang, f"{split}.tsv"), rows[::-1])


# ---------------------------------------------------------------------------
# Recipe tests
# ---------------------------------------------------------------------------


def test_voxpopuli_recipe_identical_audio_gives_r1_of_one(tmp_path, sense_folder):
    data, out = str(tmp_path / "voxpopuli"), str(tmp_path / "out")
    sizes = build_voxpopuli(data)
    results = _run("VoxPopuli", data, out, f"[{sense_folder}]", "--pairs=[fr-en, en-fr, fr-de]")

    # each section of Table I is its own table
    _check_table(os.path.join(out, "x_en"), ["tiny-sense"], {"fr-en": sizes["fr-en"]})
    _check_table(os.path.join(out, "en_y"), ["tiny-sense"], {"en-fr": sizes["en-fr"]})
    _check_table(os.path.join(out, "x_y"), ["tiny-sense"], {"fr-de": sizes["fr-de"]})
    # the right answer is the only identical recording
    for pair in sizes:
        assert results["tiny-sense"][pair]["R@1"] == 1.0, pair
        assert results["tiny-sense"][pair]["MRR"] == 1.0, pair

    # what was left out, and why
    fr_en = {row["item"]: row["reason"] for row in _dropped(out, "fr-en")}
    assert sorted(fr_en) == [f"{VOX_SESSION}-fr_{VOX_SESSION}-{i}" for i in (4, 5)]
    utt4 = f"{VOX_SESSION}-fr_{VOX_SESSION}-4"
    missing = os.path.join(data, "transcribed_data", "fr", "2018", utt4 + ".ogg")
    assert fr_en[utt4] == f"audio file missing: {os.path.abspath(missing)}"
    assert fr_en[f"{VOX_SESSION}-fr_{VOX_SESSION}-5"].startswith("translation audio file missing")
    fr_de = [row["reason"] for row in _dropped(out, "fr-de")]
    assert any(r.startswith("malformed line") for r in fr_de)
    assert any(r.startswith("no translation: no de interpretation") for r in fr_de)
    query, search, targets = load_pair(os.path.join(out, "manifests", "fr-de"))
    for (q, entry), t in zip(query.items(), targets.tolist()):
        # the query's target is the interpretation of the same English utterance
        assert q.split("_", 1)[1] == list(search)[t].split("_", 1)[1]
        assert entry["lang"] == "fr" and search[entry["target"]]["lang"] == "de"


def test_retrieval_recipe_centres_each_side(tmp_path):
    """Each language's embeddings share a large offset: only centring each side finds the
    translations (the paper's mean subtraction), and the recipe path must apply it."""
    data = str(tmp_path / "voxpopuli")
    build_voxpopuli(data)
    model = "[{type: helpers.offset_encoder:OffsetEncoder, name: offset}]"
    centred = _run("VoxPopuli", data, str(tmp_path / "centred"), model, "--pairs=[fr-en]")
    raw = _run(
        "VoxPopuli", data, str(tmp_path / "raw"), model, "--pairs=[fr-en]", "--mean_subtract=False"
    )
    assert centred["offset"]["fr-en"]["R@1"] == 1.0
    assert raw["offset"]["fr-en"]["R@1"] < 0.5


def test_mustc_recipe_cuts_talks_by_offsets(tmp_path, sense_folder):
    data, out = str(tmp_path / "MUSTC"), str(tmp_path / "out")
    seg = lambda i: (f"english {i}", f"deutsch {i}")  # noqa: E731
    build_talks(
        data,
        "en-de",
        {
            "train": {"ted_1": [seg(1), seg(2), ("english 3", "deutsch 10")]},
            "dev": {"ted_10": [seg(10), seg(11), ("english 12", None)]},
            "tst-COMMON": {
                "ted_20": [seg(20), ("PAST-END english 21", "deutsch 21"), seg(22)],
                "missing-ted_21": [seg(23)],
            },
            "tst-HE": {"ted_30": [seg(30)]},
        },
        ext=".wav",
        yaml_wav_ext=True,
        seed=300,
    )
    results = _run("MUSTC", data, out, f"[{sense_folder}]", "--pairs=[en-de]")

    # queries: dev 10, 11 (12 has no translation); tst-COMMON 20, 22 (21 runs past the
    # end, 23's talk is missing); tst-HE 30. Search: every distinct German line of the
    # four splits: train 1, 2, 10 (= dev 10, one entry), dev 11, tst-COMMON 20-23, tst-HE 30.
    table = _check_table(os.path.join(out, "retrieval"), ["tiny-sense"], {"en-de": (5, 9)})
    assert table.title == "EN speech -> Y text retrieval (MUST-C)"
    assert results["tiny-sense"]["en-de"]["n_query"] == 5
    reasons = {row["item"]: row["reason"] for row in _dropped(out, "en-de")}
    assert reasons["dev/2"].startswith("no translation")
    assert reasons["tst-COMMON/1"].startswith("segment beyond the end of the audio")
    assert reasons["tst-COMMON/3"].startswith("audio file missing")
    assert reasons["tst-COMMON/3"].endswith(os.path.join("tst-COMMON", "wav", "missing-ted_21.wav"))
    assert len(reasons) == 3

    query, search, targets = load_pair(os.path.join(out, "manifests", "en-de"))
    for entry, t in zip(query.values(), targets.tolist()):
        assert search[list(search)[t]]["text"] == entry["text"].replace("english", "deutsch")
    # a query is the segment [offset, offset + duration] of its talk
    entry = query["tst-COMMON/2"]
    assert entry["path"].endswith(os.path.join("tst-COMMON", "wav", "ted_20.wav"))
    whole, _ = sf.read(entry["path"], dtype="float32")
    first = int(round(entry["start"] * RATE))
    cut = whole[first : first + int(round(entry["duration"] * RATE))]
    seg_wav = AudioItem(entry["path"], entry["start"], entry["duration"]).load()
    assert np.allclose(seg_wav.numpy(), cut, atol=1e-6)
    assert np.allclose(cut, _clip(300 + 0 + 2, entry["duration"]), atol=1e-4)


def test_mtedx_recipe_x_en_and_x_y_tables(tmp_path, sense_folder):
    data, out = str(tmp_path / "mtedx"), str(tmp_path / "out")
    for pair, tgt_word, seed in (("es-en", "english", 400), ("es-fr", "français", 500)):
        seg = lambda i, w=tgt_word: (f"español {i}", f"{w} {i}")  # noqa: E731
        build_talks(
            data,
            pair,
            {
                "train": {"aaa111": [seg(1), seg(2)]},
                "valid": {"bbb222": [seg(3), seg(4)]},
                "test": {"ccc333": [seg(5), seg(6), seg(7)]},
            },
            ext=".flac",
            yaml_wav_ext=False,  # mTEDx names the talk without its extension
            seed=seed,
        )
    _run("mTEDx", data, out, f"[{sense_folder}]", "--pairs=[es-en, es-fr]")
    _check_table(os.path.join(out, "x_en"), ["tiny-sense"], {"es-en": (5, 7)})
    _check_table(os.path.join(out, "x_y"), ["tiny-sense"], {"es-fr": (5, 7)})
    query, _, _ = load_pair(os.path.join(out, "manifests", "es-en"))
    assert all(e["path"].endswith(".flac") for e in query.values())
    assert _dropped(out, "es-en") == []


def test_fleurs_recipe_pairs_by_sentence_id(tmp_path, sense_folder):
    data, out = str(tmp_path / "fleurs"), str(tmp_path / "out")
    build_fleurs(data)
    results = _run("FLEURS", data, out, f"[{sense_folder}]", "--pairs=[fr-en, fr-de]")
    # pairs outside the hparams' tables (Table III / IV columns) make one table
    _check_table(os.path.join(out, "retrieval"), ["tiny-sense"], {"fr-en": (3, 3), "fr-de": (3, 3)})
    assert set(results["tiny-sense"]) == {"fr-en", "fr-de"}

    query, search, targets = load_pair(os.path.join(out, "manifests", "fr-de"))
    # one recording per sentence id, the first by file name that can be read;
    # de sentence 3 comes from de's dev split
    by_id = {e["sentence_id"]: os.path.basename(e["path"]) for e in query.values()}
    assert sorted(by_id) == ["1", "2", "3"]
    assert by_id["1"].startswith("11") and by_id["2"].startswith("20")
    assert [search[list(search)[t]]["text"] for t in targets.tolist()] == [
        "Die Katze schläft.",
        "Es regnet.",
        "Ein rotes Sofa.",
    ]
    reasons = [row["reason"] for row in _dropped(out, "fr-de")]
    assert any(r.startswith("audio file missing") and r.endswith("100007.wav") for r in reasons)
    assert "no translation: no de sentence with id 4" in reasons
    assert len(reasons) == 2


# ---------------------------------------------------------------------------
# Shared machinery: cache, adapters, tables, mis-pairing
# ---------------------------------------------------------------------------


def _tiny_pair(folder: str, audio_dir: str, n: int = 4) -> str:
    query, search = {}, {}
    for i in range(n):
        path = _write_audio(os.path.join(audio_dir, f"q{i}.wav"), _clip(700 + i, 0.3))
        query[f"q{i}"] = audio_entry(path, "fr", target=f"s{i}")
        search[f"s{i}"] = text_entry(f"sentence number {i}", "en")
    return write_pair(folder, query, search, PrepReport(name="fr-en"), options={})


def _brute_force_metrics(encoder, pair: str) -> dict[str, float]:
    """R@1, R@5, R@10 and MRR of a prepared pair, by the paper's definition, in float64.

    Each side is centred on its own mean and L2-normalised; a query's rank is one
    plus the number of search entries scoring higher than its target, or as high and
    listed before it (ties go to the first entry: this pair's texts tie in pairs).
    """
    query, search, targets = load_pair(pair)
    q = encoder.encode_audio([AudioItem(e["path"]) for e in query.values()]).double()
    s = encoder.encode_text([e["text"] for e in search.values()]).double()
    q, s = (torch.nn.functional.normalize(x - x.mean(0), dim=-1) for x in (q, s))
    scores = q @ s.T
    target = scores.gather(1, targets[:, None])
    before = torch.arange(len(search))[None] < targets[:, None]
    ranks = 1 + ((scores > target) | ((scores == target) & before)).sum(dim=1).double()
    out = {f"R@{k}": (ranks <= k).double().mean().item() for k in (1, 5, 10)}
    out["MRR"] = (1 / ranks).mean().item()
    return out


def test_embedding_cache_recomputes_nothing_it_has(tmp_path):
    pair = _tiny_pair(str(tmp_path / "fr-en"), str(tmp_path / "audio"))
    cache = str(tmp_path / "cache")
    first = CountingEncoder("a")
    run_benchmark([first], {"fr-en": pair}, str(tmp_path / "out"), cache_folder=cache)
    assert len(first.audio_calls) == 4 and len(first.text_calls) == 4

    again = CountingEncoder("a")  # a re-run: same identity
    metrics = evaluate_pair(again, pair, EmbeddingCache(cache))
    assert again.audio_calls == [] and again.text_calls == []
    assert {k: metrics[k] for k in ("R@1", "R@5", "R@10", "MRR")} == pytest.approx(
        _brute_force_metrics(CountingEncoder("a"), pair)
    )

    other = CountingEncoder("b")  # a second model computes its own
    evaluate_pair(other, pair, EmbeddingCache(cache))
    assert len(other.audio_calls) == 4

    # a changed file (new size and mtime) is embedded again, alone
    path = os.path.join(str(tmp_path / "audio"), "q2.wav")
    _write_audio(path, _clip(999, 0.4))
    changed = CountingEncoder("a")
    query, _, _ = load_pair(pair)
    emb = embed_manifest(changed, query, EmbeddingCache(cache))
    assert [os.path.basename(i.path) for i in changed.audio_calls] == ["q2.wav"]
    assert emb.shape == (4, 8)


def test_two_models_fill_one_table_across_runs(tmp_path):
    pair = _tiny_pair(str(tmp_path / "fr-en"), str(tmp_path / "audio"))
    out = str(tmp_path / "out")
    run_benchmark([build_encoder(CountingEncoder("A"))], {"fr-en": pair}, out, title="t")
    run_benchmark([build_encoder(CountingEncoder("B"))], {"fr-en": pair}, out, title="t")
    table = _check_table(os.path.join(out, "retrieval"), ["A", "B"], {"fr-en": (4, 4)})
    assert table.title == "t"
    expected = _brute_force_metrics(CountingEncoder("A"), pair)  # B embeds alike
    for model in ("A", "B"):
        for metric in ("R@1", "R@5", "R@10", "MRR"):
            assert table.value(model, "fr-en", metric) == pytest.approx(expected[metric])
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        assert set(json.load(f)) == {"A", "B"}


def test_sense_encoder_from_spec_embeds_segments_and_text(tmp_path, sense_folder):
    enc = build_encoder({"type": "sense.evaluation:SENSEEncoder", "source": sense_folder})
    assert isinstance(enc, SENSEEncoder) and enc.name == "tiny-sense"
    path = _write_audio(str(tmp_path / "a.wav"), _clip(1, 1.2))
    segment = _write_audio(str(tmp_path / "b.wav"), _clip(1, 1.2)[4000:12000])
    emb = enc.encode_audio([AudioItem(path, 0.25, 0.5), AudioItem(segment), AudioItem(path)])
    assert emb.shape == (3, 32)
    assert torch.allclose(emb[0], emb[1], atol=1e-5)  # a segment = the same audio cut out
    assert enc.encode_text(["hello", "bonjour"], "en").shape == (2, 32)
    # the cache identity is the folder and the size and mtime of its files
    assert enc.identity == SENSEEncoder(sense_folder).identity
    assert enc.identity != SENSEEncoder(sense_folder + "-other").identity


def test_model_list_from_yaml_specs(tmp_path):
    encoders = build_encoders(
        [str(tmp_path / "sense"), {"source": str(tmp_path / "samu"), "name": "SAMU-XLSR"}, "sonar"]
    )
    assert [e.name for e in encoders] == ["sense", "SAMU-XLSR", "SONAR"]
    with pytest.raises(ValueError, match="two models are named"):
        build_encoders([str(tmp_path / "a" / "m"), str(tmp_path / "b" / "m")])
    with pytest.raises(TypeError, match="is not an Encoder"):
        build_encoder(object())


@pytest.mark.skipif(importlib.util.find_spec("sonar") is not None, reason="sonar installed")
def test_sonar_encoder_needs_its_package():
    enc = SONAREncoder()
    assert enc.speech_card("fr") == "sonar_speech_encoder_fra"
    assert enc.speech_card("hr") == "sonar_speech_encoder_eng"  # no Croatian encoder
    with pytest.raises(ImportError, match="sonar-space"):
        enc.encode_text(["bonjour"], "fr")


def test_misaligned_talk_files_are_refused(tmp_path):
    data = str(tmp_path / "MUSTC")
    build_talks(data, "en-de", {"dev": {"ted_1": [("a", "b"), ("c", "d")]}}, ".wav", True, 1)
    _write_lines(os.path.join(data, "en-de", "data", "dev", "txt", "dev.de"), ["b"])
    ted = _load_recipe("MUSTC", "ted_segments")
    with pytest.raises(ValueError, match=r"dev\.de: 1"):
        ted.prepare_talk_segments(data, str(tmp_path / "m"), "en-de", ["dev"], ["dev"])


def test_a_query_without_its_target_is_never_written(tmp_path):
    query = {"q": text_entry("x", "en", target="missing")}
    with pytest.raises(ValueError, match="not in the search manifest"):
        write_pair(str(tmp_path), query, {"s": text_entry("y", "fr")}, PrepReport(name="en-fr"), {})
    assert not os.path.exists(tmp_path / "query.json")


# ---------------------------------------------------------------------------
# Partial downloads and layout errors
# ---------------------------------------------------------------------------


def test_a_partial_download_evaluates_the_pairs_that_are_there(tmp_path):
    data = str(tmp_path / "voxpopuli")
    build_voxpopuli(data)
    model = "[{type: helpers.offset_encoder:OffsetEncoder, name: offset}]"
    results = _run("VoxPopuli", data, str(tmp_path / "out"), model, "--pairs=[fr-en, pl-en]")
    assert set(results["offset"]) == {"fr-en"}
    with open(tmp_path / "out" / "log.txt", encoding="utf-8") as f:
        assert "skipping pl-en: no S2S manifest for pl->en" in f.read()
    with pytest.raises(FileNotFoundError, match="no pair has its data"):
        _run("VoxPopuli", data, str(tmp_path / "out2"), model, "--pairs=[pl-en]")


def test_layout_errors_name_the_fix(tmp_path):
    model = "[{type: helpers.offset_encoder:OffsetEncoder, name: offset}]"
    with pytest.raises(FileNotFoundError, match="--data_folder .*nowhere: no such folder"):
        _run("FLEURS", str(tmp_path / "nowhere"), str(tmp_path / "out"), model, "--pairs=[fr-en]")
    data = str(tmp_path / "fleurs")
    build_fleurs(data)
    audio = os.path.join(data, "fr_fr", "audio")
    os.rename(os.path.join(audio, "test"), os.path.join(audio, "kept"))
    with open(os.path.join(audio, "test.tar.gz"), "wb") as f:
        f.write(b"\x1f\x8b")
    with pytest.raises(ValueError, match=r"test.tar.gz: the audio is still archived; extract it"):
        _run("FLEURS", data, str(tmp_path / "out"), model, "--pairs=[fr-en]")


def test_a_recipe_error_is_one_line_without_a_traceback(tmp_path):
    script = os.path.join(RECIPES, "FLEURS", "retrieval", "evaluate.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [
            sys.executable,
            script,
            os.path.join(os.path.dirname(script), "hparams", "evaluate.yaml"),
            f"--data_folder={tmp_path / 'nowhere'}",
            f"--output_folder={tmp_path / 'out'}",
            "--models=[sonar]",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith(
        "evaluate.py: error: --data_folder " + str(tmp_path / "nowhere") + ": no such folder"
    )
