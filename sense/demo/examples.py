"""Inputs for the README's examples, cut from the demo's held-out utterances.

After ``make demo``, ``demo_output/examples/`` holds what the README's
``sense embed / index / search`` and Python examples read, so each of them
runs as written:

- ``clips/``: held-out utterances in several languages and audio formats
  (mp3, wav, flac), one ``talk.mp3`` longer than the model's ``max_duration``
  (cut into windows), and two bad inputs a user meets (an empty file and a
  text file named ``.ogg``) that the commands skip and list;
- ``sentences.txt``: the same meanings written in English, and two in other
  languages.

Every utterance is held out: the trained model never heard its meaning.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from sense.dataio import load_audio
from sense.demo.commonvoice import load_heldout
from sense.io import atomic_write, write_text_atomic

SAMPLE_RATE = 16000
#: (language, file extension) of each short clip; the i-th held-out meaning.
CLIPS = (("en", "wav"), ("fr", "mp3"), ("de", "flac"), ("es", "mp3"), ("ru", "wav"))
#: Utterances joined into ``talk.mp3`` (about 45 s), with this pause between them.
TALK_UTTERANCES = 16
TALK_PAUSE_S = 0.6
#: Languages of the extra written sentences (meanings 0 and 1).
EXTRA_SENTENCES = ("fr", "de")
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III")}


def _write_audio(path: Path, wav: np.ndarray) -> None:
    fmt, subtype = FORMATS[path.suffix[1:]]
    atomic_write(path, lambda tmp: sf.write(tmp, wav, SAMPLE_RATE, format=fmt, subtype=subtype))


def write_examples(release: str | os.PathLike, output: str | os.PathLike) -> dict[str, str]:
    """Write ``clips/`` and ``sentences.txt`` from a demo release's held-out test meanings.

    Parameters
    ----------
    release : str or PathLike
        A release written by :func:`sense.demo.commonvoice.write_commonvoice_release`.
    output : str or PathLike
        The examples folder (rewritten).

    Returns
    -------
    dict
        ``{"clips": folder, "sentences": file}``.

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.commonvoice import write_commonvoice_release
    >>> from sense.demo.corpus import build_parallel_corpus, split_corpus
    >>> root = tempfile.mkdtemp()
    >>> split = split_corpus(build_parallel_corpus(8), n_heldout=6)
    >>> _ = write_commonvoice_release(root, split, ["en", "fr"], progress=False)  # doctest: +SKIP
    >>> out = write_examples(root, os.path.join(root, "examples"))  # doctest: +SKIP
    >>> sorted(os.listdir(out["clips"]))  # doctest: +SKIP
    ['empty.wav', 'en_0.wav', 'fr_1.mp3', 'notes.ogg', 'talk.mp3']
    """
    release, output = Path(release), Path(output)
    heldout = load_heldout(release)
    test_ids = heldout["splits"]["test"]
    clip_of = {
        lang: {sid: clip for clip, sid in heldout["clips"][lang].items()}
        for lang in heldout["clips"]
    }
    languages = [lang for lang, _ in CLIPS if lang in clip_of]
    if len(test_ids) < len(CLIPS):
        raise ValueError(f"{release}: {len(test_ids)} held-out meanings; need {len(CLIPS)}")

    def utterance(lang: str, sid: str) -> np.ndarray:
        path = release / lang / "clips" / clip_of[lang][sid]
        return load_audio(str(path), SAMPLE_RATE).numpy()

    clips = output / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for i, (lang, ext) in enumerate(CLIPS):
        if lang in clip_of:
            _write_audio(clips / f"{lang}_{i}.{ext}", utterance(lang, test_ids[i]))
    pause = np.zeros(int(TALK_PAUSE_S * SAMPLE_RATE), dtype=np.float32)
    parts = []
    for i in range(TALK_UTTERANCES):
        lang = languages[i % len(languages)]
        parts += [utterance(lang, test_ids[(len(CLIPS) + i) % len(test_ids)]), pause]
    _write_audio(clips / "talk.mp3", np.concatenate(parts))
    (clips / "empty.wav").write_bytes(b"")
    write_text_atomic(clips / "notes.ogg", "not audio: notes taken during the recording\n")

    sentences = [heldout["sentences"][test_ids[i]]["en"] for i in range(len(CLIPS))]
    sentences += [
        heldout["sentences"][test_ids[i]][lang]
        for i, lang in enumerate(EXTRA_SENTENCES)
        if lang in heldout["languages"]
    ]
    write_text_atomic(output / "sentences.txt", "\n".join(sentences) + "\n")
    return {"clips": str(clips), "sentences": str(output / "sentences.txt")}
