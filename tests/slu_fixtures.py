"""Tiny SLU releases in their real layouts, with synthetic audio and known bad rows.

Each ``build_*`` writes a release under ``root`` and returns what a correct
preparation must give: ``{"rows": {split: n}, "bad": {item substring: reason
substring}, "example": (split, transcript, spans), "hostile": [(split,
transcript)]}``; ``hostile`` are rows holding text that breaks careless readers
(:mod:`hostile_text`), each with the transcript its manifest must hold.
"""

from __future__ import annotations

import json
import os

import numpy as np
import soundfile as sf
from hostile_text import BOM, DOLLARS, EMOJI, LINE, LONG, RTL

RATE = 16000


def clip(seed: int, seconds: float = 1.2, rate: int = RATE) -> np.ndarray:
    """A short two-tone clip, different for each seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wav = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(150, 900, size=2)) / 4
    return wav.astype("float32")


def write_audio(path: str, seed: int, fmt: str = "FLAC", rate: int = RATE) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, clip(seed, rate=rate), rate, format=fmt)


def flac_bytes(seed: int, rate: int = RATE) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, clip(seed, rate=rate), rate, format="FLAC")
    return buf.getvalue()


def write_jsonl(path: str, entries: list, start: str = "", end: str = "\n") -> None:
    """One JSON object a line; ``start`` begins the file (a BOM), ``end`` ends each line."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(start)
        for e in entries:
            f.write(e if isinstance(e, str) else json.dumps(e, ensure_ascii=False))
            f.write(end)


# ---------------------------------------------------------------- SLURP


def _slurp_entry(slurp_id: int, annotation: str, files: list[str]) -> dict:
    sentence = annotation
    for ch in "[]":
        sentence = sentence.replace(ch, "")
    return {
        "slurp_id": slurp_id,
        "sentence": sentence,
        "sentence_annotation": annotation,
        "intent": "alarm_set",
        "recordings": [{"file": f, "wer": 0.0, "ent_wer": 0.0, "status": "correct"} for f in files],
    }


def build_slurp(root: str) -> dict:
    """``dataset/slurp/*.jsonl`` and ``audio/slurp_{real,synth}/*.flac``.

    Bad: a sentence with an unclosed bracket, one with an empty filler, a
    missing recording, a corrupt recording, a malformed JSON line.
    """
    real = os.path.join(root, "audio", "slurp_real")
    synth = os.path.join(root, "audio", "slurp_synth")
    seed = iter(range(1000))

    def rec(stamp: int, headset_too: bool = True) -> list[str]:
        names = [f"audio-{stamp}.flac"] + ([f"audio-{stamp}-headset.flac"] if headset_too else [])
        for n in names:
            write_audio(os.path.join(real, n), next(seed))
        return names

    train = [
        _slurp_entry(1, "wake me up at [time : five am] [date : this week]", rec(101)),
        _slurp_entry(2, "olly  play  [artist_name : the   beatles]", rec(102)),
        _slurp_entry(3, f"how many unread\temails {LINE}", rec(103, headset_too=False)),
        _slurp_entry(4, "set an alarm for [time : seven", rec(104)),  # unclosed
        _slurp_entry(5, "remind me [date : ] please", rec(105)),  # empty filler
        "{not json",
    ]
    missing = _slurp_entry(6, "call [person : raju]", ["audio-106.flac", "audio-106-headset.flac"])
    write_audio(os.path.join(real, "audio-106.flac"), next(seed))  # the headset one is missing
    train.append(missing)
    synth_entries = [_slurp_entry(7, "order [food_type : chinese] food", ["audio-s1.flac"])]
    write_audio(os.path.join(synth, "audio-s1.flac"), next(seed))
    devel = [_slurp_entry(8, f"weather in [place_name : {RTL}] {DOLLARS} {EMOJI}", rec(108))]
    corrupt = os.path.join(real, "audio-109.flac")
    test = [_slurp_entry(9, "turn [device_type : lights] off", ["audio-109.flac"])]
    test.append(_slurp_entry(10, "[time : noon] lunch", rec(110, headset_too=False)))
    with open(corrupt, "wb") as f:
        f.write(b"fLaC this is not really audio" * 4)
    folder = os.path.join(root, "dataset", "slurp")
    write_jsonl(os.path.join(folder, "train.jsonl"), train)
    write_jsonl(os.path.join(folder, "train_synthetic.jsonl"), synth_entries)
    write_jsonl(os.path.join(folder, "devel.jsonl"), devel)
    write_jsonl(os.path.join(folder, "test.jsonl"), test)
    return {
        # 2 + 2 + 1 + 1 (raju's far-field clip) recordings in train
        "rows": {"train": 6, "dev": 2, "test": 1},
        "rows_headset": {"train": 2, "dev": 1, "test": 0},
        "rows_with_synthetic": {"train": 7, "dev": 2, "test": 1},
        "bad": {
            "slurp_id 4": "markup does not parse",
            "slurp_id 5": "empty filler",
            "train.jsonl:6": "malformed line",
            "audio-106-headset.flac": "audio file missing",
            "audio-109.flac": "unreadable",
        },
        "example": ("train", "olly play the beatles", [["artist_name", 10, 21]]),
        "hostile": [
            ("train", f"how many unread emails {LINE}"),
            ("dev", f"weather in {RTL} {DOLLARS} {EMOJI}"),
        ],
    }


# ---------------------------------------------------------------- MSNER

MSNER_SENTENCES = {
    "nl": [" Ik ben in Nederland", " De Europese Commissie werkt", " Het is vrijdag", "Dag Weber"],
    "es": [" Yo estoy en Madrid", " La Comisión Europea trabaja", " Hoy es viernes", "Hola Weber"],
    "fr": [
        f" Je suis à Paris {LINE}",  # the entity (Paris) before the hostile words
        " La Commission européenne travaille",
        " Nous sommes vendredi",
        "Salut Weber",
    ],
    "de": [
        " Ich bin in Berlin",
        " Die Europäische Kommission arbeitet",
        " Es ist Freitag",
        "Hallo Weber",
    ],
}
# (18-type label, 8-type label, first token, number of tokens) of each sentence's entity
MSNER_ENTITIES = [
    ("geopolitical area", "place", 3, 1),
    ("organization", "organization", 1, 2),
    ("date", "when", 2, 1),
    ("person", "person", 1, 1),
]


def _msner_entry(item: str, sentence: str, label: str, first: int, count: int) -> dict:
    tokens = [
        w if i == 0 and not sentence.startswith(" ") else " " + w
        for i, w in enumerate(sentence.split())
    ]
    positions = list(range(first, first + count))
    return {
        "id": item,
        "input": tokens,
        "annotation": [
            {"type": label, "entity": [tokens[p] for p in positions], "position": positions}
        ],
    }


def build_msner(root: str) -> dict:
    """``msner/transcript-<lang>-*.jsonl`` and VoxPopuli's ``transcribed_data/<lang>/<year>/<id>.ogg``.

    Per language: train (2 utterances, ``transcript-<lang>-train.jsonl``), dev
    (1, ``transcript-<lang>-validation-ann.jsonl``), test (1, in both the
    ``-ann-ontonotes-v1`` and ``-ann-combined-v1`` files). Bad, all in ``fr``
    train: an entity that does not match its tokens, non-consecutive
    positions, an empty ``input``, a missing clip, a corrupt clip and a
    malformed line.
    """
    msner = os.path.join(root, "msner")
    vox = os.path.join(root, "voxpopuli")
    seed = iter(range(2000, 3000))

    def audio(lang: str, item: str) -> None:
        write_audio(
            os.path.join(vox, "transcribed_data", lang, item[:4], item + ".ogg"), next(seed), "OGG"
        )

    for li, (lang, sentences) in enumerate(MSNER_SENTENCES.items()):
        files: dict[str, list] = {
            "train": [],
            "validation-ann": [],
            "test-ann-ontonotes-v1": [],
            "test-ann-combined-v1": [],
        }
        for i, sentence in enumerate(sentences):
            item = f"20{10 + i}0312-0900-PLENARY-{li}-{lang}_20{10 + i}0312-16:53:3{i}_{i}"
            audio(lang, item)
            label, short, first, count = MSNER_ENTITIES[i]
            entry = _msner_entry(item, sentence, label, first, count)
            if i < 2:
                files["train"].append(entry)
            elif i == 2:
                files["validation-ann"].append(entry)
            else:
                files["test-ann-ontonotes-v1"].append(entry)
                files["test-ann-combined-v1"].append(
                    _msner_entry(item, sentence, short, first, count)
                )
        if lang == "fr":
            bad = [
                _msner_entry(
                    f"20170101-0900-PLENARY-9-fr_x_{k}", " Je vois Paris", "location", 2, 1
                )
                for k in range(6)
            ]
            bad[0]["annotation"][0]["entity"] = [" Lyon"]  # does not match its token
            bad[1]["annotation"][0]["position"] = [0, 2]  # not consecutive
            bad[1]["annotation"][0].pop("entity")
            bad[2]["input"] = []  # empty transcript
            bad[2]["annotation"] = []
            audio("fr", bad[0]["id"])
            audio("fr", bad[1]["id"])
            audio("fr", bad[2]["id"])
            # bad[3]: no audio at all
            corrupt = os.path.join(vox, "transcribed_data", "fr", "2017", bad[4]["id"] + ".ogg")
            with open(corrupt, "wb") as f:
                f.write(b"OggS not really a vorbis stream" * 3)
            audio("fr", bad[5]["id"])  # a good one among the bad
            files["train"] += bad + ["{oops"]
        for name, entries in files.items():
            # files saved on Windows: fr's with a byte-order mark, nl's with CRLF line ends
            start, end = (BOM, "\n") if lang == "fr" else ("", "\r\n" if lang == "nl" else "\n")
            write_jsonl(os.path.join(msner, f"transcript-{lang}-{name}.jsonl"), entries, start, end)
    return {
        "languages": list(MSNER_SENTENCES),
        "rows": {"train": 2, "dev": 1, "test": 1},
        "rows_fr": {"train": 3, "dev": 1, "test": 1},
        "bad": {
            "fr_x_0": "does not match tokens",
            "fr_x_1": "not consecutive",
            "fr_x_2": "empty transcript",
            "fr_x_3": "audio file missing",
            "fr_x_4": "unreadable",
            "train.jsonl:9": "malformed line",
        },
        "example": ("dev", "Nous sommes vendredi", [["date", 12, 20]]),
        "example_test_combined": ("test", "Salut Weber", [["person", 6, 11]]),
        "hostile": [("train", f"Je suis à Paris {LINE}")],
    }


# ---------------------------------------------------------------- Speech-MASSIVE


def _wav_bytes(seed: int, rate: int = RATE) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, clip(seed, rate=rate), rate, format="WAV")
    return buf.getvalue()


def _massive_parquet(path: str, rows: list[dict]) -> None:
    """One shard as the release writes it: ``datasets`` parquet with an Audio column."""
    from datasets import Audio, Dataset

    columns = {k: [r.get(k) for r in rows] for k in rows[0]}
    ds = Dataset.from_dict(columns).cast_column("audio", Audio(sampling_rate=RATE))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.to_parquet(path)


def _massive_row(utt: str, annot: str, audio: bytes | None, name: str, reported=False) -> dict:
    plain = annot
    for ch in "[]":
        plain = plain.replace(ch, "")
    return {
        "id": utt,
        "locale": "fr-FR",
        "utt": plain,
        "annot_utt": annot,
        "intent_str": "alarm_set",
        "audio": None if audio is None else {"bytes": audio, "path": name},
        "path": name,
        "is_transcript_reported": reported,
        "is_validated": True,
        "speaker_id": "spk1",
    }


def build_speech_massive(root: str) -> dict:
    """``Speech-MASSIVE/fr-FR/{train,validation,train_115}-*.parquet`` and
    ``Speech-MASSIVE-test/fr-FR/test-*.parquet``.

    Bad (train): unclosed markup, an empty transcript, undecodable audio bytes,
    no audio bytes. One good train row is 22.05 kHz (resampled). One test row
    is flagged ``is_transcript_reported`` (kept unless ``skip_reported``).
    """
    data = os.path.join(root, "Speech-MASSIVE", "fr-FR")
    test = os.path.join(root, "Speech-MASSIVE-test", "fr-FR")
    train = [
        _massive_row("1", "réveille-moi à [time : cinq heures]", _wav_bytes(1), "a1.wav"),
        _massive_row("2", "mets  [artist_name : les beatles]", _wav_bytes(2, 22050), "a2.wav"),
        _massive_row("3", f"quel temps\tfait-il {LINE}", _wav_bytes(3), "a3.wav"),
        _massive_row("4", "alarme à [time : sept heures", _wav_bytes(4), "a4.wav"),
        _massive_row("5", "   ", _wav_bytes(5), "a5.wav"),
        _massive_row("6", "allume la [house_place : cuisine]", b"RIFF not a wave file", "a6.wav"),
        _massive_row("7", "éteins la [house_place : salle]", None, "a7.wav"),
    ]
    _massive_parquet(os.path.join(data, "train-00000-of-00002.parquet"), train[:4])
    _massive_parquet(os.path.join(data, "train-00001-of-00002.parquet"), train[4:])
    _massive_parquet(
        os.path.join(data, "train_115-00000-of-00001.parquet"),
        [_massive_row("1", "réveille-moi à [time : cinq heures]", _wav_bytes(1), "a1.wav")],
    )
    _massive_parquet(
        os.path.join(data, "validation-00000-of-00001.parquet"),
        [
            _massive_row("8", "[date : demain] à [time : midi]", _wav_bytes(8), "a8.wav"),
            _massive_row("9", f"bonjour [person : {RTL}] {EMOJI}", _wav_bytes(9), "a9.wav"),
        ],
    )
    _massive_parquet(
        os.path.join(test, "test-00000-of-00001.parquet"),
        [
            _massive_row("10", "appelle [person : marie]", _wav_bytes(10), "a10.wav"),
            _massive_row("11", "appelle [person : paul]", _wav_bytes(11), "a11.wav", reported=True),
        ],
    )
    return {
        "data": os.path.dirname(data),
        "test": os.path.dirname(test),
        "rows": {"train": 3, "dev": 2, "test": 2},
        "rows_few_shot": {"train": 1, "dev": 2, "test": 1},
        "bad": {
            "4-a4": "unclosed",
            "5-a5": "empty transcript",
            "6-a6": "unreadable",
            "7": "no audio bytes",
        },
        "example": ("train", "mets les beatles", [["artist_name", 5, 16]]),
        "hostile": [
            ("train", f"quel temps fait-il {LINE}"),
            ("dev", f"bonjour {RTL} {EMOJI}"),
        ],
    }


# ---------------------------------------------------------------- TARIC-SLU


def build_taric(root: str) -> dict:
    """``{train,dev,test}.csv`` with ``ID, wav, semantics`` and ``wav/*.wav`` (8 kHz).

    Bad (train): an unclosed concept, a missing clip, an empty annotation, a
    line with too many fields. The tables are CSV as a spreadsheet saves them
    (CRLF line ends; train's with a byte-order mark); one transcript holds
    hostile text, a tab and a very long line.
    """
    import csv

    def table(name: str, rows: list[list[str]]) -> None:
        with open(os.path.join(root, name), "w", encoding="utf-8", newline="") as f:
            f.write(BOM if name == "train.csv" else "")
            writer = csv.writer(f)  # CRLF line ends
            writer.writerow(["ID", "wav", "duration", "semantics"])
            writer.writerows(rows)

    seed = iter(range(3000, 4000))

    def row(item: str, semantics: str, write: bool = True) -> list[str]:
        if write:
            write_audio(os.path.join(root, "wav", f"{item}.wav"), next(seed), "WAV", rate=8000)
        return [item, f"wav/{item}.wav", "0.3", semantics]

    os.makedirs(root, exist_ok=True)
    train = [
        row("t1", "نحب <command-tache> نقطع > تسكرة لـ <ville-arrivee> تونس >"),
        row("t2", "<jour> غدوة> الصباح"),
        row("t3", f"بقداش التسكرة\t{LINE} {LONG}"),
        row("t4", "نحب <ville-arrivee> سوسة"),  # never closed
        row("t5", "<ville-depart> صفاقس >", write=False),  # no audio
        row("t6", "   "),
        ["t7", "wav/t7.wav", "0.3", "x", "extra field"],
    ]
    table("train.csv", train)
    table("dev.csv", [row("d1", "<ville-arrivee> بنزرت >")])
    table("test.csv", [row("s1", "وقتاش <train> التران > الجاي")])
    return {
        "rows": {"train": 3, "dev": 1, "test": 1},
        "bad": {
            "t4": "never closed",
            "t5.wav": "audio file missing",
            "t6": "empty transcript",
            "train.csv:8": "malformed line",
        },
        "example": (
            "train",
            "نحب نقطع تسكرة لـ تونس",
            [["command-tache", 4, 8], ["ville-arrivee", 18, 22]],
        ),
        "hostile": [("train", f"بقداش التسكرة {LINE} {LONG}")],
    }
