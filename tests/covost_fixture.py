"""A tiny CoVoST 2 release: the Common Voice fixture plus ``covost_v2.<src>_en.tsv`` files."""

import os

from cv_fixture import SENTENCES, build_common_voice
from hostile_text import DOLLARS, EMOJI, LINE, MARKS, RTL

#: English translation of the i-th sentence of every language of the fixture.
ENGLISH = [
    "the cat sleeps",
    "a young doctor reads a letter",
    "it rains in the garden",
    f"the train arrives at noon, it costs {LINE}",  # text a TSV field can carry
    f"we eat bread {EMOJI} {RTL} for $5",
    "the door is open",
    f'she sings {MARKS} a "song" {DOLLARS}',  # quotes: the files are read without quoting
    "the sky is blue",
]
#: CoVoST split of the i-th clip (the Common Voice fixture: 6 train clips, 2 dev).
SPLITS = ["train", "train", "train", "train_covost", "test", "test", "dev", "dev"]
COLUMNS = ("path", "sentence", "translation", "split")


def build_covost(root: str) -> dict:
    """Write a Common Voice release and CoVoST files at ``root``; what preparation must find.

    Beyond the Common Voice fixture's bad clips (corrupt, missing, empty,
    too short; their CoVoST rows are written), each language gets rows that
    preparation must leave out: one not in ``validated.tsv``, one with an
    empty translation, one with an unknown split, and a malformed line.

    Hostile text (:mod:`hostile_text`) is in three translations and, from the
    Common Voice fixture, three transcripts.

    Returns ``{"kept": {split: n}, "bad": {item: reason}, "texts": {manifest ID:
    (transcript, translation)}}`` (``texts``: every kept row).
    """
    cv = build_common_voice(root)
    kept = {"train": 0, "dev": 0, "test": 0}
    bad, texts = {}, {}
    for loc in SENTENCES:
        rows = []
        for i, sentence in enumerate(SENTENCES[loc]):
            name = f"common_voice_{loc}_{1000 + i}.mp3"
            split = SPLITS[i]
            rows.append((name, sentence, ENGLISH[i], split))
            kept["train" if split == "train_covost" else split] += 1
            texts[f"{loc}_common_voice_{loc}_{1000 + i}"] = (sentence, ENGLISH[i])
        # the Common Voice fixture's bad clips (its empty transcript is kept: CoVoST
        # joins on the path and translates; the clip itself is fine)
        rows.append((f"common_voice_{loc}_9999.mp3", "x", "the cat sleeps again", "train"))
        if loc == "ru":
            kept["train"] += 1
            texts["ru_common_voice_ru_9999"] = ("", "the cat sleeps again")
        else:
            bad[f"common_voice_{loc}_9999.mp3"] = cv["bad"][f"common_voice_{loc}_9999.mp3"]
        if loc in ("de", "ru"):
            rows.append((f"common_voice_{loc}_8888.mp3", "x", ENGLISH[1], "dev"))
            bad[f"common_voice_{loc}_8888.mp3"] = cv["bad"][f"common_voice_{loc}_8888.mp3"]
        rows.append((f"common_voice_{loc}_7777.mp3", "x", "nowhere", "train"))
        bad[f"common_voice_{loc}_7777.mp3"] = "not in validated.tsv"
        rows.append((f"common_voice_{loc}_1000.mp3", "x", "  ", "dev"))
        rows.append((f"common_voice_{loc}_1001.mp3", "x", "two", "other"))
        lines = ["\t".join(COLUMNS)] + ["\t".join(r) for r in rows]
        lines.append("common_voice_broken.mp3\tonly two fields")
        with open(os.path.join(root, f"covost_v2.{loc}_en.tsv"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return {"kept": kept, "bad": bad, "texts": texts}
