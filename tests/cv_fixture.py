"""A tiny Common Voice release in the real layout, with real mp3 clips."""

import os
import subprocess
import sys

import numpy as np
import soundfile as sf
from hostile_text import DOLLARS, EMOJI, LINE, MARKS, RTL

from sense.demo.commonvoice import CV_COLUMNS

RATE = 48000
SENTENCES = {
    "fr": [
        "le chat dort",
        "un jeune médecin lit une lettre",
        "il pleut sur le jardin",
        f"le train arrive à midi, il coûte {LINE}",  # text a TSV field can carry
        "nous mangeons du pain",
        "la porte est ouverte",
        "elle chante une chanson",
        "le ciel est bleu",
    ],
    "de": [
        "die Katze schläft",
        "ein junger Arzt liest einen Brief",
        "es regnet im Garten",
        "der Zug kommt um zwölf",
        "wir essen Brot",
        "die Tür ist offen",
        f"sie singt {MARKS} ein Lied {DOLLARS}",
        "der Himmel ist blau",
    ],
    "ru": [
        "кошка спит",
        "молодой врач читает письмо",
        "в саду идёт дождь",
        "поезд приходит в полдень",
        f"мы едим хлеб {EMOJI} {RTL} за $5",
        "дверь открыта",
        "она поёт песню",
        "небо синее",
    ],
}


def _clip(seed: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    freqs = rng.uniform(150, 900, size=3)
    wav = sum(np.sin(2 * np.pi * f * t) for f in freqs) / 6
    return (wav + 0.01 * rng.standard_normal(t.shape)).astype("float32")


def _write_tsv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(CV_COLUMNS) + "\n")
        for row in rows:
            f.write("\t".join(str(row.get(c, "")) for c in CV_COLUMNS) + "\n")


def build_common_voice(root: str, n_train: int = 6, n_dev: int = 2) -> dict:
    """Write ``root/<locale>/{train,dev,test,validated}.tsv`` and ``clips/*.mp3``.

    Five rows are bad on purpose: in ``fr`` train a corrupt clip, in ``de``
    train a missing clip, in ``ru`` train an empty transcript; in ``de`` dev an
    empty (0-byte) clip, in ``ru`` dev a clip shorter than ``min_duration``.

    Three sentences hold hostile text (``$`` words, quotes, commas, emoji,
    right-to-left script: :mod:`hostile_text`), one in each language.

    Returns ``{"bad": {clip: reason}, "good": {split: count}, "transcripts":
    {manifest ID: sentence}}`` (the good rows' sentences).
    """
    bad = {}
    good = {"train": 0, "dev": 0}
    transcripts = {}
    for li, (loc, sentences) in enumerate(SENTENCES.items()):
        clips_dir = os.path.join(root, loc, "clips")
        os.makedirs(clips_dir, exist_ok=True)
        rows = {"train": [], "dev": []}
        for i, sentence in enumerate(sentences[: n_train + n_dev]):
            split = "train" if i < n_train else "dev"
            name = f"common_voice_{loc}_{1000 + i}.mp3"
            sf.write(
                os.path.join(clips_dir, name),
                _clip(100 * li + i, 0.6 + 0.15 * (i % 4)),
                RATE,
                format="MP3",
            )
            rows[split].append(
                {
                    "client_id": f"c{li}{i % 2}",
                    "path": name,
                    "sentence_id": f"s{li}{i}",
                    "sentence": sentence,
                    "sentence_domain": "",
                    "up_votes": 2,
                    "down_votes": 0,
                    "locale": loc,
                }
            )
            good[split] += 1
            transcripts[f"{loc}_{os.path.splitext(name)[0]}"] = sentence
        extra = {
            "path": f"common_voice_{loc}_9999.mp3",
            "client_id": "cx",
            "sentence_id": "sx",
            "sentence": sentences[0] + " encore",
            "up_votes": 2,
            "down_votes": 0,
            "locale": loc,
        }
        if loc == "fr":  # corrupt: not an mp3
            with open(os.path.join(clips_dir, extra["path"]), "wb") as f:
                f.write(b"ID3 this is not really audio" * 10)
            bad[extra["path"]] = "unreadable audio"
        elif loc == "de":  # missing: listed but never written
            bad[extra["path"]] = "no such file"
        else:  # empty transcript on a good clip
            sf.write(os.path.join(clips_dir, extra["path"]), _clip(999, 0.7), RATE, format="MP3")
            extra["sentence"] = ""
            bad[extra["path"]] = "empty transcript"
        rows["train"].append(extra)
        if loc in ("de", "ru"):
            dev_extra = dict(extra, path=f"common_voice_{loc}_8888.mp3", sentence=sentences[1])
            path = os.path.join(clips_dir, dev_extra["path"])
            if loc == "de":  # an empty file
                open(path, "wb").close()
                bad[dev_extra["path"]] = "empty file (0 bytes)"
            else:  # 50 ms: below the recipe's min_duration of 0.1 s
                sf.write(path, _clip(998, 0.05), RATE, format="MP3")
                bad[dev_extra["path"]] = "shorter than 0.1 s"
            rows["dev"].append(dev_extra)
        _write_tsv(os.path.join(root, loc, "train.tsv"), rows["train"])
        _write_tsv(os.path.join(root, loc, "dev.tsv"), rows["dev"])
        _write_tsv(os.path.join(root, loc, "test.tsv"), [])
        _write_tsv(os.path.join(root, loc, "validated.tsv"), rows["train"] + rows["dev"])
    return {"bad": bad, "good": good, "transcripts": transcripts}


def recipe_args(cv, out, w2v, xlmr, *extra):
    """Recipe arguments for the tiny models; ``extra`` replaces defaults of the same name."""
    names = {e.split("=", 1)[0] for e in extra}
    defaults = [
        "hparams/train_sense.yaml",
        f"--data_folder={cv}",
        f"--output_folder={out}",
        f"--student_source={w2v}",
        f"--teacher_source={xlmr}",
        "--encoder_dim=32",
        "--encoder_lr=0.002",
        "--batch_seconds=4",
        "--prepare_workers=1",
        "--num_workers=0",
        "--device=cpu",
        f"--batch_log={out}/batches",
    ]
    return [a for a in defaults if a.split("=", 1)[0] not in names] + list(extra)


def checkpoints(out: str) -> list[str]:
    """The ``CKPT+...`` folders of a recipe run's ``save/``, oldest first."""
    save = os.path.join(out, "save")
    return sorted(os.path.join(save, d) for d in os.listdir(save) if d.startswith("CKPT+"))


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RECIPE = os.path.join(REPO, "recipes", "CommonVoice", "SENSE")
KILLER = os.path.join(REPO, "tests", "helpers", "kill_after_checkpoint.py")
TIMEOUT = 600


def run_recipe(
    args,
    nproc: int = 1,
    env: dict | None = None,
    threads: str | None = "1",
    recipe: str = RECIPE,
    kill_after_checkpoint: int | None = None,
    **kw,
):
    """``train.py`` of the Common Voice recipe (or of ``recipe``) in a subprocess, offline.

    ``nproc > 1`` launches it with ``torch.distributed.run`` on a free port;
    ``env`` adds variables; ``threads`` sets ``OMP_NUM_THREADS`` (None: unset);
    ``kill_after_checkpoint=N`` kills the run (SIGKILL) after its N-th intra-epoch
    checkpoint (``helpers/kill_after_checkpoint.py``).
    """
    from helpers.ports import free_port

    full_env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **(env or {}))
    if threads is not None:
        full_env["OMP_NUM_THREADS"] = threads
    full_env["PYTHONPATH"] = os.pathsep.join([REPO, full_env.get("PYTHONPATH", "")])
    launcher = []
    if nproc > 1:
        launcher = ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
        launcher.append(f"--master_port={free_port()}")
    kw.setdefault("text", True)
    if kill_after_checkpoint is not None:
        launcher = [KILLER, str(kill_after_checkpoint)]
    return subprocess.run(
        [sys.executable, *launcher, "train.py", *args],
        cwd=recipe,
        env=full_env,
        capture_output=True,
        timeout=TIMEOUT,
        **kw,
    )
