"""A tiny Europarl-ST (v1.1) release in its real layout, m4a (AAC) talks included."""

import os
from pathlib import Path

import numpy as np

TALK_SECONDS = 3.0


def write_m4a(path, wav: np.ndarray, rate: int) -> None:
    """Encode a mono float waveform as AAC in an MP4 container (a Europarl-ST talk)."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            wav[None].astype(np.float32), format="flt", layout="mono"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in lines))


def build_europarl(root: Path) -> Path:
    """en -> fr, de and fr -> en; one talk missing, one segment past its talk's end."""
    root = Path(root)
    t = np.arange(int(TALK_SECONDS * 44100)) / 44100
    for src, talk in (("en", "talk_en"), ("fr", "talk_fr")):
        os.makedirs(root / src / "audios")
        write_m4a(root / src / "audios" / f"{talk}.m4a", 0.3 * np.sin(2 * np.pi * 300 * t), 44100)
    en = ["the cat sleeps", "a doctor reads", "gone", "too late"]
    lst = ["talk_en 0.00 1.00", "talk_en 1.20 2.50", "missing 0.0 1.0", "talk_en 2.0 9.0"]
    for tgt, text in (
        ("fr", ["le chat dort", "un médecin lit", "parti", "trop tard"]),
        ("de", ["die Katze schläft", "ein Arzt liest", "weg", "zu spät"]),
    ):
        folder = root / "en" / tgt / "test"
        write_lines(folder / "segments.lst", lst)
        write_lines(folder / "segments.en", en)
        write_lines(folder / f"segments.{tgt}", text)
    folder = root / "fr" / "en" / "test"
    write_lines(folder / "segments.lst", ["talk_fr 0.5 2.0"])
    write_lines(folder / "segments.fr", ["bonjour"])
    write_lines(folder / "segments.en", ["hello"])
    return root
