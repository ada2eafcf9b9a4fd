"""Tiny MLSUM and DECODA releases in their layouts, and an in-process recipe runner."""

import importlib.util
import json
import os
import sys

import numpy as np
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    ("Le ciel est bleu. Nous mangeons du pain. Elle chante une chanson.", "Un été à Noël."),
]
SUMMARY_WORDS = " ".join(s for _, s in ARTICLES)


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
