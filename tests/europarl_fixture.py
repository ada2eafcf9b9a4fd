"""A tiny Europarl-ST (v1.1) release in its real layout, m4a (AAC) talks included."""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
from hostile_text import BOM, DOLLARS, EMOJI, LINE, MARKS, RTL

RECIPE = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "recipes", "EuroparlST", "ZeroST")
)
TALK_SECONDS = 3.0
#: Lines of ``en/{fr,de}/test/segments.{en,fr,de}``: the first two segments are kept,
#: the last two are bad (a missing talk, a segment past its talk's end). Plain text
#: lines: hostile text (:mod:`hostile_text`) with a tab.
EN = ["the cat sleeps", f"a doctor\treads {LINE}", "gone", "too late"]
FR = [f"le chat dort {DOLLARS}", f"un médecin lit {MARKS} {EMOJI}", "parti", "trop tard"]
DE = [f"die Katze schläft {RTL}", "ein Arzt liest", "weg", "zu spät"]


def recipe_module(name: str):
    """A script of the ZeroST recipe, imported as a module (the recipe folder on the path)."""
    if RECIPE not in sys.path:
        sys.path.insert(0, RECIPE)
    spec = importlib.util.spec_from_file_location(
        f"_europarl_{name}", os.path.join(RECIPE, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def write_lines(path, lines, start: str = "", end: str = "\n"):
    """One line each; ``start`` begins the file (a byte-order mark), ``end`` ends lines."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(start + "".join(f"{line}{end}" for line in lines))


def build_europarl(root: Path) -> Path:
    """en -> fr, de and fr -> en; one talk missing, one segment past its talk's end.

    The texts are :data:`EN`, :data:`FR`, :data:`DE`; as files edited on Windows,
    ``en/fr/test``'s files begin with a byte-order mark and ``en/de/test``'s end
    their lines with CRLF.
    """
    root = Path(root)
    t = np.arange(int(TALK_SECONDS * 44100)) / 44100
    for src, talk in (("en", "talk_en"), ("fr", "talk_fr")):
        os.makedirs(root / src / "audios")
        write_m4a(root / src / "audios" / f"{talk}.m4a", 0.3 * np.sin(2 * np.pi * 300 * t), 44100)
    lst = ["talk_en 0.00 1.00", "talk_en 1.20 2.50", "missing 0.0 1.0", "talk_en 2.0 9.0"]
    for tgt, text, start, end in (("fr", FR, BOM, "\n"), ("de", DE, "", "\r\n")):
        folder = root / "en" / tgt / "test"
        write_lines(folder / "segments.lst", lst, start, end)
        write_lines(folder / "segments.en", EN, start, end)
        write_lines(folder / f"segments.{tgt}", text, start, end)
    folder = root / "fr" / "en" / "test"
    write_lines(folder / "segments.lst", ["talk_fr 0.5 2.0"])
    write_lines(folder / "segments.fr", ["bonjour"])
    write_lines(folder / "segments.en", ["hello"])
    return root
