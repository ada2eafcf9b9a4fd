"""Tiny MLSUM and DECODA releases in their layouts, and an in-process recipe runner."""

import importlib.util
import json
import os
import sys

import numpy as np
import soundfile as sf
from hostile_text import BOM, DOLLARS, EMOJI, LINE, LONG, MARKS, RTL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The sentences of the fourth article: hostile text (:mod:`hostile_text`), a tab, a very
#: long sentence; JSON lines carry them all.
HOSTILE_SENTENCES = [
    "Le ciel est bleu.",
    f"Nous mangeons du pain\tà {LINE}.",
    f"Elle chante {LONG}.",
]
ARTICLES = [
    (
        "M. Dupont est arrivé à Paris. Il a visité le musée. Le train était en retard.",
        "M. Dupont visite Paris.",
    ),
    (
        "Il pleut sur le jardin. La porte est ouverte. Le chat dort sur le canapé rouge.",
        "Le chat dort.",
    ),
    (
        "Un jeune médecin lit une lettre. Elle vient de l'hôpital. Il est content.",
        "Le médecin lit une lettre.",
    ),
    (" ".join(HOSTILE_SENTENCES), f"Un été à Noël, {DOLLARS} {MARKS} {EMOJI} {RTL}."),
]
SUMMARY_WORDS = (
    " ".join(s for _, s in ARTICLES) + " Le client demande un horaire. Le client a perdu un objet."
)


def build_mlsum(root: str, per_split: int = 4) -> dict:
    """``root/fr_{train,val,test}.jsonl`` as MLSUM's release has them.

    Train holds one bad record (empty summary). Returns the good counts.
    """
    os.makedirs(root, exist_ok=True)
    counts = {}
    for split in ("train", "val", "test"):
        rows = []
        for i in range(per_split):
            text, summary = ARTICLES[i % len(ARTICLES)]
            rows.append(
                {
                    "text": text,
                    "summary": summary,
                    "topic": "societe",
                    "url": f"https://example.org/{split}/{i}",
                    "title": summary,
                    "date": "01/01/2019",
                }
            )
        counts[split] = len(rows)
        if split == "train":
            rows.append(dict(rows[0], summary="  ", url="https://example.org/bad"))
        with open(os.path.join(root, f"fr_{split}.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return counts


def _tone(seed: int, seconds: float, rate: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * rng.uniform(150, 600) * t)).astype("float32")


def load_recipe(folder: str):
    """The ``main`` of a recipe's ``train.py``, imported with its folder on the path."""
    folder = os.path.join(ROOT, "recipes", folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "train_" + folder.replace(os.sep, "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main, folder


TRS = """<?xml version="1.0" encoding="ISO-8859-1"?>
<!DOCTYPE Trans SYSTEM "trans-14.dtd">
<Trans scribe="x" audio_filename="{id}" version="1">
<Speakers><Speaker id="spk1" name="client"/><Speaker id="spk2" name="agent"/></Speakers>
<Episode><Section type="report" startTime="0" endTime="2.4">
<Turn speaker="spk1" startTime="0" endTime="1.0"><Sync time="0"/>bonjour je voudrais un renseignement</Turn>
<Turn startTime="1.0" endTime="1.4"><Sync time="1.0"/></Turn>
<Turn speaker="spk2" startTime="1.4" endTime="2.4"><Sync time="1.4"/>oui c'est à quel sujet</Turn>
</Section></Episode></Trans>
"""
SYNOPSES = ["Le client demande un horaire.", f"Le client a perdu {MARKS} {DOLLARS} {EMOJI} {RTL}."]


def build_decoda(root: str) -> dict:
    """A DECODA release with CCCS synopses: ``audio/``, ``trans-manu/<split>/``, ``synopsis/``.

    Train has 3 good dialogues, dev 2, test 2 (one of them without a ``.trs``,
    listed in ``partitions/test.lst``: cut by the silence splitter). Two are bad:
    a corrupt recording (train) and a dialogue without synopsis (dev). Every
    other synopsis holds hostile text (:mod:`hostile_text`); as saved on
    Windows, those files have CRLF line ends and the last one a byte-order mark
    and no columns (the synopsis alone).
    """
    rate = 16000
    layout = {"train": 4, "dev": 3, "test": 2}
    bad = {}
    n = 0
    for split, count in layout.items():
        for k in range(count):
            n += 1
            dialog = f"20091112_RATP_SCD_{n:04d}"
            os.makedirs(os.path.join(root, "audio"), exist_ok=True)
            wav = np.concatenate(
                [_tone(n, 1.0), np.zeros(int(0.4 * rate), "float32"), _tone(n + 50, 1.0)]
            )
            audio = os.path.join(root, "audio", dialog + ".wav")
            if split == "train" and k == 3:
                with open(audio, "wb") as f:
                    f.write(b"RIFF not really a wave file" * 4)
                bad[dialog] = "unreadable"
            else:
                sf.write(audio, wav, rate)
            if split == "test" and k == 1:
                os.makedirs(os.path.join(root, "partitions"), exist_ok=True)
                with open(os.path.join(root, "partitions", "test.lst"), "w") as f:
                    f.write(dialog + "\n")
            else:
                folder = os.path.join(root, "trans-manu", split)
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, dialog + ".trs"), "w", encoding="iso-8859-1") as f:
                    f.write(TRS.format(id=dialog))
            if split == "dev" and k == 2:
                bad[dialog] = "no synopsis"
                continue
            os.makedirs(os.path.join(root, "synopsis"), exist_ok=True)
            synopsis, end = SYNOPSES[n % 2], "\r\n" if n % 2 else "\n"
            line = synopsis if n == 9 else f"{dialog}\tannot1\t{synopsis}"
            name = os.path.join(root, "synopsis", f"FR_{dialog}_syn.txt")
            with open(name, "w", encoding="utf-8", newline="") as f:
                f.write((BOM if n == 9 else "") + line + end)
    return bad
