"""The demo's parallel corpus, its espeak-ng synthesis and its Common Voice release."""

import csv
import json
import unicodedata

import numpy as np
import pytest
import soundfile as sf

from sense.demo import commonvoice
from sense.demo.commonvoice import (
    CV_COLUMNS,
    load_heldout,
    load_word_alignments,
    write_commonvoice_release,
)
from sense.demo.corpus import (
    LANGUAGES,
    NOUNS,
    PLACES,
    SUBJECTS,
    TIMES,
    VERBS,
    Meaning,
    ObjectPhrase,
    build_parallel_corpus,
    meaning_space_size,
    render,
    split_corpus,
)

# ----------------------------------------------------------------------------- corpus


def test_corpus_is_aligned_unique_and_deterministic():
    corpus = build_parallel_corpus(3000, seed=7)
    assert len(corpus) == 3000
    assert [row["id"] for row in corpus] == [f"s{i:05d}" for i in range(3000)]
    for row in corpus:
        assert set(row) == {"id", *LANGUAGES}
        assert all(row[lang].endswith(".") for lang in LANGUAGES)
    for lang in LANGUAGES:  # no meaning twice, and no two meanings alike in any language
        assert len({row[lang] for row in corpus}) == len(corpus), lang
    assert build_parallel_corpus(50, seed=7) == build_parallel_corpus(50, seed=7)
    assert build_parallel_corpus(50, seed=7) != build_parallel_corpus(50, seed=8)
    assert meaning_space_size() > 100_000


def test_lexicon_entries_are_distinct_in_every_language():
    for table in (SUBJECTS, PLACES, TIMES, [verb for verb, _ in VERBS]):
        for column, lang in enumerate(LANGUAGES):
            entries = [row[column] for row in table]
            assert len(set(entries)) == len(entries), (lang, entries)
    for verb, objects in VERBS:
        assert set(objects) <= set(NOUNS), verb


@pytest.mark.parametrize(
    ("meaning", "expected"),
    [
        (
            Meaning(4, 0, ObjectPhrase("book", colour=0), place=0, time=0),
            {
                "en": "The teacher reads a red book in the park every morning.",
                "fr": "Le professeur lit un livre rouge dans le parc chaque matin.",
                "de": "Jeden Morgen liest der Lehrer ein rotes Buch im Park.",
                "es": "El profesor lee un libro rojo en el parque cada mañana.",
                "it": "Il professore legge un libro rosso nel parco ogni mattina.",
                "ru": "Каждое утро учитель читает красную книгу в парке.",
            },
        ),
        (
            Meaning(8, 3, ObjectPhrase("orange"), place=None, time=None),
            {
                "en": "My mother eats an orange.",
                "fr": "Ma mère mange une orange.",
                "de": "Meine Mutter isst eine Orange.",
                "es": "Mi madre come una naranja.",
                "it": "Mia madre mangia un'arancia.",
                "ru": "Моя мама ест апельсин.",
            },
        ),
        (
            Meaning(5, 11, ObjectPhrase("umbrella", colour=1), place=None, time=3),
            {
                "en": "The doctor looks for a blue umbrella on Sundays.",
                "fr": "Le médecin cherche un parapluie bleu le dimanche.",
                "de": "Sonntags sucht der Arzt einen blauen Regenschirm.",
                "es": "El médico busca un paraguas azul los domingos.",
                "it": "Il medico cerca un ombrello blu la domenica.",
                "ru": "По воскресеньям врач ищет синий зонт.",
            },
        ),
    ],
)
def test_render_matches_hand_checked_translations(meaning, expected):
    assert {lang: render(meaning, lang) for lang in LANGUAGES} == expected


def test_russian_numerals_govern_the_genitive():
    def ru(noun, n):
        return render(Meaning(0, 1, ObjectPhrase(noun, number=n), None, None), "ru")

    assert ru("book", 2) == "Мужчина пишет две книги."  # feminine two, genitive singular
    assert ru("letter", 2) == "Мужчина пишет два письма."  # neuter two
    assert ru("letter", 5) == "Мужчина пишет пять писем."  # genitive plural


def test_russian_is_cyrillic():
    for row in build_parallel_corpus(500, seed=1):
        letters = [c for c in row["ru"] if c.isalpha()]
        assert letters and all("CYRILLIC" in unicodedata.name(c) for c in letters), row["ru"]


def test_split_holds_meanings_out():
    corpus = build_parallel_corpus(200, seed=0)
    split = split_corpus(corpus, n_heldout=20, seed=3, n_dev=10)
    assert (len(split.train), len(split.dev), len(split.heldout)) == (170, 10, 20)
    parts = [{row["id"] for row in part} for part in split]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == {row["id"] for row in corpus}
    train_text = {row[lang] for row in split.train for lang in LANGUAGES}
    assert not any(row[lang] in train_text for row in split.heldout for lang in LANGUAGES)
    assert split_corpus(corpus, 20, seed=3, n_dev=10) == split
    with pytest.raises(ValueError, match="keep at least one"):
        split_corpus(corpus, n_heldout=200)


# ------------------------------------------------------------------------------ synth


@pytest.fixture(scope="module")
def tts():
    pytest.importorskip("espeakng_loader")
    from sense.demo.synth import EspeakSynthesizer

    return EspeakSynthesizer()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_synthesis_returns_audio_and_word_boundaries(tts, lang):
    text = build_parallel_corpus(5, seed=2)[4][lang]
    wav, sr, words = tts.synthesize(text, lang, variant="f2")
    assert sr == 22050 and wav.dtype == np.float32 and wav.ndim == 1
    duration = len(wav) / sr
    assert 0.5 < duration < 10 and 0.05 < np.abs(wav).max() <= 1.0
    assert [w for w, _, _ in words] == [t.strip(".") for t in text.split()]
    starts = [b for _, b, _ in words]
    assert starts == sorted(starts)
    for (_, b, e), (_, next_b, _) in zip(words, words[1:] + [("", duration, duration)]):
        assert 0 <= b < e <= next_b + 1e-9 <= duration + 1e-9
    assert words[-1][2] > 0.7 * duration  # the words cover the utterance


def test_variation_changes_the_audio(tts):
    text = "Le garçon lit un livre dans le parc."
    base = tts.synthesize(text, "fr", rate=175, pitch=50, variant="m3").waveform
    for kwargs in ({"variant": "f2"}, {"pitch": 70}, {"pitch_range": 10}):
        other = tts.synthesize(text, "fr", **{"rate": 175, "pitch": 50, "variant": "m3", **kwargs})
        n = min(len(base), len(other.waveform))
        assert len(base) != len(other.waveform) or not np.allclose(base[:n], other.waveform[:n])
    slow = tts.synthesize(text, "fr", rate=120, variant="m3").waveform
    fast = tts.synthesize(text, "fr", rate=260, variant="m3").waveform
    assert len(slow) > 1.5 * len(fast)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    assert tts.sample_params(rng_a) == tts.sample_params(rng_b)


def test_synthesis_rejects_bad_input(tts):
    with pytest.raises(ValueError, match="no voice variant"):
        tts.synthesize("Hello.", "en", variant="no-such-variant")
    with pytest.raises(ValueError, match="no voice 'zz'"):
        tts.synthesize("Hello.", "zz")
    with pytest.raises(ValueError, match="rate"):
        tts.synthesize("Hello.", "en", rate=1000)
    with pytest.raises(ValueError, match="empty"):
        tts.synthesize("  ", "en")


# ------------------------------------------------------------------------ common voice


@pytest.fixture(scope="module")
def small_split():
    return split_corpus(build_parallel_corpus(4, seed=11), n_heldout=1, seed=0, n_dev=1)


@pytest.fixture(scope="module")
def release(tmp_path_factory, tts, small_split):
    root = tmp_path_factory.mktemp("cv")
    summary = write_commonvoice_release(
        root,
        small_split,
        ["fr", "ru"],
        tts,
        utterances_per_sentence=2,
        num_workers=1,
        progress=False,
    )
    return root, summary


def _read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_release_has_the_common_voice_layout(release, small_split):
    root, summary = release
    assert summary["written"] and summary["clips"]["fr"] == {"train": 4, "dev": 2, "test": 2}
    for locale in ("fr", "ru"):
        folder = root / locale
        tables = {}
        for name in ("train", "dev", "test", "validated", "invalidated", "other"):
            rows = _read_tsv(folder / f"{name}.tsv")
            assert tuple(rows[0]) == CV_COLUMNS, name
            assert all(len(row) == len(CV_COLUMNS) for row in rows), name
            tables[name] = [dict(zip(CV_COLUMNS, row)) for row in rows[1:]]
        assert tables["invalidated"] == [] and tables["other"] == []
        assert tables["validated"] == tables["train"] + tables["dev"] + tables["test"]
        for name, part in (("train", 0), ("dev", 1), ("test", 2)):
            texts = [row[locale] for row in small_split[part] for _ in range(2)]
            assert [row["sentence"] for row in tables[name]] == texts
        durations = dict(_read_tsv(folder / "clip_durations.tsv")[1:])
        alignments = load_word_alignments(root, locale)
        for row in tables["validated"]:
            assert row["locale"] == locale and len(row["client_id"]) == 128
            assert row["gender"] in ("male_masculine", "female_feminine")
            info = sf.info(folder / "clips" / row["path"])
            assert info.format == "MP3" and info.channels == 1 and info.samplerate == 22050
            wav, _ = sf.read(folder / "clips" / row["path"], dtype="float32")
            assert abs(len(wav) / 22050 - int(durations[row["path"]]) / 1000) < 0.05
            words = alignments[row["path"]]
            assert len(words) == len(row["sentence"].split())
            assert all(b < e for _, b, e in words) and words[-1][2] <= len(wav) / 22050 + 0.01
        # Two readings of a sentence are two different speakers.
        assert tables["train"][0]["client_id"] != tables["train"][1]["client_id"]


def test_heldout_manifest(release, small_split):
    root, _ = release
    manifest = load_heldout(root)
    heldout = small_split.heldout[0]
    assert manifest["splits"]["test"] == [heldout["id"]]
    assert manifest["sentences"][heldout["id"]] == {x: heldout[x] for x in LANGUAGES}
    test_clips = [row[1] for row in _read_tsv(root / "ru" / "test.tsv")[1:]]
    assert all(manifest["clips"]["ru"][clip] == heldout["id"] for clip in test_clips)
    train_clips = {row[1] for row in _read_tsv(root / "ru" / "train.tsv")[1:]}
    assert not train_clips & set(manifest["clips"]["ru"])


def test_release_is_idempotent(release, tts, small_split):
    root, _ = release
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again = write_commonvoice_release(
        root,
        small_split,
        ["fr", "ru"],
        tts,
        utterances_per_sentence=2,
        num_workers=1,
        progress=False,
    )
    assert again["written"] is False
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


def test_release_rewrites_on_new_arguments_and_spares_foreign_folders(tmp_path, tts, small_split):
    first = write_commonvoice_release(
        tmp_path, small_split, ["es"], tts, num_workers=1, progress=False
    )
    second = write_commonvoice_release(
        tmp_path, small_split, ["es"], tts, seed=1, num_workers=1, progress=False
    )
    assert first["written"] and second["written"]
    stamp = json.loads((tmp_path / commonvoice.STAMP_JSON).read_text())
    assert stamp["complete"] and stamp["summary"]["clips"]["es"]["train"] == 2

    foreign = tmp_path / "other_root"
    (foreign / "de").mkdir(parents=True)
    (foreign / "de" / "mine.txt").write_text("not yours")
    with pytest.raises(FileExistsError, match="was not written"):
        write_commonvoice_release(foreign, small_split, ["de"], tts, num_workers=1, progress=False)
    assert (foreign / "de" / "mine.txt").read_text() == "not yours"


def test_parallel_release_matches_serial(tmp_path, tts, small_split, monkeypatch):
    monkeypatch.setattr(commonvoice, "PARALLEL_MIN_CLIPS", 0)
    kwargs = {"languages": ["it"], "synthesizer": tts, "progress": False}
    write_commonvoice_release(tmp_path / "serial", small_split, num_workers=1, **kwargs)
    write_commonvoice_release(tmp_path / "parallel", small_split, num_workers=2, **kwargs)
    # Voices are drawn per sentence, so the workers' order changes nothing.
    serial = _read_tsv(tmp_path / "serial" / "it" / "validated.tsv")
    assert _read_tsv(tmp_path / "parallel" / "it" / "validated.tsv") == serial
    assert len(list((tmp_path / "parallel" / "it" / "clips").glob("*.mp3"))) == 4
    # and every clip's audio is the same, byte for byte (espeak-ng's state does not carry over)
    parallel = tmp_path / "parallel" / "it" / "clips"
    for clip in (tmp_path / "serial" / "it" / "clips").glob("*.mp3"):
        assert clip.read_bytes() == (parallel / clip.name).read_bytes(), clip.name
