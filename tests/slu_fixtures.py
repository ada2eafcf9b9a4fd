"""Tiny SLU releases in their real layouts, with synthetic audio and known bad rows.

Each ``build_*`` writes a release under ``root`` and returns what a correct
preparation must give: ``{"rows": {split: n}, "bad": {item substring: reason
substring}, "example": (split, transcript, spans)}``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import soundfile as sf

RATE = 16000


def clip(seed: int, seconds: float = 0.3, rate: int = RATE) -> np.ndarray:
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


def write_jsonl(path: str, entries: list) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for e in entries:
            f.write(e if isinstance(e, str) else json.dumps(e, ensure_ascii=False))
            f.write("\n")


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
        _slurp_entry(3, "how many unread emails do i have", rec(103, headset_too=False)),
        _slurp_entry(4, "set an alarm for [time : seven", rec(104)),  # unclosed
        _slurp_entry(5, "remind me [date : ] please", rec(105)),  # empty filler
        "{not json",
    ]
    missing = _slurp_entry(6, "call [person : raju]", ["audio-106.flac", "audio-106-headset.flac"])
    write_audio(os.path.join(real, "audio-106.flac"), next(seed))  # the headset one is missing
    train.append(missing)
    synth_entries = [_slurp_entry(7, "order [food_type : chinese] food", ["audio-s1.flac"])]
    write_audio(os.path.join(synth, "audio-s1.flac"), next(seed))
    devel = [_slurp_entry(8, "what is the weather in [place_name : paris]", rec(108))]
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
    }
