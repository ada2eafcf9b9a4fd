"""Start-up: the wall time of each ``sense`` command in a fresh process, next to ``import torch``.

A user who embeds one clip pays the process start, the imports and the model
load before any audio is read. Each row is the median over ``rounds`` fresh
processes of one command line, run on tiny randomly initialised models of
each kind (:mod:`sense.testing.exports`), so that the time is start-up, not
work. The baseline rows are a bare ``python -c "import torch"`` and the
import of the inference interfaces; a usage error must cost far less than
either, since it is printed before torch is imported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

from sense import formats

SAMPLE_RATE = 16000
#: Every command line measured, by name; ``{m[...]}`` are model folders of each format.
COMMANDS = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "python -c 'import sense.inference'": [sys.executable, "-c", "import sense.inference"],
    "sense --help": ["--help"],
    "usage error: sense search INDEX (no query)": ["search", "{work}/index"],
    "usage error: sense embed -o <a user's file>": [
        "embed", "-m", "{m[sense-model]}", "{clip}", "-o", "{work}/mine.npy",
    ],
    "sense embed (one clip)": ["embed", "-m", "{m[sense-model]}", "{clip}", "-o", "{out}/e"],
    "sense index (one clip, one sentence)": [
        "index", "-m", "{m[sense-model]}", "{clip}", "{text}", "-o", "{out}/index",
    ],
    "sense search (one text query)": ["search", "{work}/index", "le chat dort"],
    "sense slu (one clip)": ["slu", "-m", "{m[sense-slu-model]}", "{clip}"],
    "sense translate (one clip)": ["translate", "-m", "{m[sense-translator]}", "{clip}"],
    "sense summarize (one text)": ["summarize", "-m", "{m[sense-summarizer]}", "{text}"],
    "sense attention (one clip)": [
        "attention", "-m", "{m[sense-model]}", "{clip}", "-o", "{out}/attention", "--no-vad",
    ],
}  # fmt: skip
BASELINE = "python -c 'import torch'"


def _prepare(work: str, models: bool = True) -> dict:
    """Models of each kind, a clip, a text file, an index and a user's file in ``work``."""
    from sense.testing import tiny
    from sense.testing.exports import export_each_kind

    if models:
        models = export_each_kind(
            os.path.join(work, "models"),
            tiny.build_tiny_w2v_bert(os.path.join(work, "w2v-bert")),
            tiny.build_tiny_xlm_roberta(os.path.join(work, "xlmr")),
        )
    clip = os.path.join(work, "clip.wav")
    rng = np.random.default_rng(0)
    sf.write(clip, (0.1 * rng.standard_normal(2 * SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE)
    text = os.path.join(work, "sentences.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("le chat dort\nthe dog barks\n")
    with open(os.path.join(work, "mine.npy"), "w", encoding="utf-8") as f:
        f.write("a user's file\n")
    fields = {"m": models, "clip": clip, "text": text, "work": work}
    if models:
        _run(_argv(COMMANDS["sense index (one clip, one sentence)"], fields, work))  # {work}/index
    return fields


def _argv(template: list[str], fields: dict, out: str) -> list[str]:
    argv = [a.format(**fields, out=out) for a in template]
    if argv[0] == sys.executable:
        return argv
    return [sys.executable, "-m", "sense.cli", *argv] + (["-q"] if argv != ["--help"] else [])


def _run(argv: list[str]) -> tuple[float, int]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    return time.perf_counter() - start, result.returncode


def run(rounds: int = 3, only: tuple[str, ...] | None = None) -> dict:
    """Median wall time of each command line over ``rounds`` fresh processes; a JSON-able dict.

    ``only``: the names of :data:`COMMANDS` to measure (all by default; the
    baseline is always measured).
    """
    names = [n for n in COMMANDS if only is None or n in only or n == BASELINE]
    with tempfile.TemporaryDirectory() as work:
        searched = "sense search (one text query)" in names  # needs the index
        models = searched or any("{m[" in a for n in names for a in COMMANDS[n])
        fields = _prepare(work, models)
        times: dict[str, list[float]] = {n: [] for n in names}
        status: dict[str, int] = {}
        for _ in range(rounds):  # commands in alternation: load changes hit all alike
            for name in names:
                out = tempfile.mkdtemp(dir=work)
                seconds, status[name] = _run(_argv(COMMANDS[name], {**fields, "work": work}, out))
                times[name].append(seconds)
    base = statistics.median(times[BASELINE])
    rows = [
        {
            "command": name,
            "median_s": round(statistics.median(t), 3),
            "ratio_to_import_torch": round(statistics.median(t) / base, 2),
            "exit_status": status[name],
        }
        for name, t in times.items()
    ]
    return {"rounds": rounds, "rows": rows, "formats": sorted(formats.FORMATS)}
