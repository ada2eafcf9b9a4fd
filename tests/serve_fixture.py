"""A tiny index for `sense serve`'s tests: a model, clips, a talk cut into windows, sentences.

``sense index`` runs in the corpus folder, so the index holds relative paths
(``clips/clip0.wav``) as a user's would, and the server reads them from ``--root``.
Some entries get a ``language`` (as an index of a multilingual corpus may carry);
the others have none.
"""

import os

import numpy as np
import soundfile as sf
import torch
from test_cli import SR, tone

from sense.cli import main
from sense.export import WindowSettings, export_model
from sense.index import load_index
from sense.lobes.speech import HFSpeechEncoder
from sense.nnet.pooling import AttentivePooling

SENTENCES = ["the cat sleeps on the red sofa", "le chat dort sur le canapé rouge"]
CLIP_F0 = [150, 230, 340, 520]
TALK_F0 = [180, 260, 390, 610]
#: entry id -> language, written into the index's entries after it is built.
LANGUAGES = {
    "clips/clip0.wav": "fr",
    "clips/talk.wav#2": "fr",
    "sentences.txt:1": "en",
    "sentences.txt:2": "fr",
}
INDEX_NAME = "demo.index"


def export(folder: str, w2v_bert: str, xlmr: str, seed: int = 0) -> str:
    """A tiny SENSE export whose recordings longer than 3 s are cut into 2 s windows."""
    encoder = HFSpeechEncoder(w2v_bert)
    torch.manual_seed(seed)
    pooling = AttentivePooling(encoder.output_dim)
    with torch.no_grad():
        pooling.attention.weight.mul_(5.0)
    windows = WindowSettings(max_duration=3.0, window=2.0, overlap=0.5)
    return export_model(folder, encoder, pooling, teacher=xlmr, windows=windows)


def write_corpus(root) -> None:
    """``clips/clip{0..3}.wav`` (1 s each), ``clips/talk.wav`` (4 s), ``sentences.txt``."""
    clips = root / "clips"
    clips.mkdir(parents=True)
    for i, f0 in enumerate(CLIP_F0):
        sf.write(clips / f"clip{i}.wav", tone(f0, 1.0, i), SR)
    talk = np.concatenate([tone(f0, 1.0, 10 + i) for i, f0 in enumerate(TALK_F0)])
    sf.write(clips / "talk.wav", talk, SR)
    (root / "sentences.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")


def build_index(root, model: str) -> str:
    """``sense index`` of the corpus in ``root`` (relative paths), with languages added."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        argv = ["index", "-m", model, "clips", "sentences.txt", "-o", INDEX_NAME]
        status = main([*argv, "--device", "cpu", "-q"])
    finally:
        os.chdir(cwd)
    assert status == 0
    folder = str(root / INDEX_NAME)
    index = load_index(folder)
    index.entries = [
        {**e, "language": LANGUAGES[e["id"]]} if e["id"] in LANGUAGES else e for e in index.entries
    ]
    index.save(folder)
    return folder
