"""SLU with no download: the CTC probe on the demo's students, in several languages.

The demo corpus's grammar knows which words of each sentence are the person,
the object, the number, the place and the time
(:func:`sense.demo.corpus.render_with_slots`). This module renders the demo's
own corpus (same draw and split as ``python -m sense.demo``, so the held-out
meanings were never heard by the distilled student) with those slots,
synthesizes it with espeak-ng, writes SLU manifests per language and split,
and runs the DemoCorpus SLU recipe (``python train.py hparams/train.yaml``) for each
encoder and each training language, testing on every language: held-out COER
and CVER in-language (the diagonal) and zero-shot (the rest), as in Table V::

    python -m sense.demo              # first: the demo's students (demo_output/)
    python -m sense.demo.slu          # then: writes demo_slu/summary.md

Usage as a library::

    prepare_demo_slu("data", languages=["en", "fr"], sentences=60, heldout=10, dev=5)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from sense.demo.corpus import build_parallel_corpus, draw_meanings, render_with_slots, split_corpus
from sense.demo.recipes import REPO, recipe_folder, run_recipe
from sense.io import atomic_write, write_text_atomic
from sense.prepare import done_stamp
from sense.results import ErrorRateTable
from sense.slu.data import write_slu_manifest

logger = logging.getLogger("sense.demo.slu")

RECIPE = os.path.join(REPO, "recipes", "DemoCorpus", "SLU")
HPARAMS = os.path.join(RECIPE, "hparams", "train.yaml")
#: Split names of the manifests, from the corpus's parts.
SPLITS = {"train": "train", "dev": "dev", "heldout": "test"}
#: Seed of the corpus draw and split (the demo's).
CORPUS_SEED = 0
AUDIO_FORMAT = "FLAC"
#: Where a recipe run leaves its per-split metrics, in its output folder.
RESULTS, SUMMARY = "results", "summary.json"


def prepare_demo_slu(
    folder: str,
    languages: list[str],
    sentences: int = 800,
    heldout: int = 100,
    dev: int = 50,
    seed: int = CORPUS_SEED,
) -> dict[str, dict[str, str]]:
    """Synthesize the corpus with its slots; write ``<folder>/<lang>/{train,dev,test}.csv``.

    Every meaning is spoken once per language, by a voice drawn at random
    (espeak-ng variant, speed, pitch). Idempotent: a finished preparation
    with the same settings is not redone, and clips already written are kept.

    Returns
    -------
    dict
        ``{lang: {split: manifest path}}``.
    """
    from sense.demo.synth import EspeakSynthesizer

    settings = {
        "languages": list(languages),
        "sentences": sentences,
        "heldout": heldout,
        "dev": dev,
        "seed": seed,
    }
    manifests = {
        lang: {split: os.path.join(folder, lang, f"{split}.csv") for split in SPLITS.values()}
        for lang in languages
    }
    os.makedirs(folder, exist_ok=True)
    _, is_done, mark_done = done_stamp(folder, settings)
    if is_done():
        return manifests
    meanings = draw_meanings(sentences, seed)
    parts = split_corpus(
        build_parallel_corpus(sentences, seed), n_heldout=heldout, n_dev=dev, seed=seed
    )
    synthesizer = EspeakSynthesizer()
    rng = np.random.default_rng(seed)
    for lang in languages:
        audio = Path(folder, lang, "audio")
        audio.mkdir(parents=True, exist_ok=True)
        for part, split in SPLITS.items():
            rows = []
            for corpus_row in getattr(parts, part):
                uid = corpus_row["id"]
                text, slots = render_with_slots(meanings[int(uid[1:])], lang)
                path = audio / f"{uid}.flac"
                params = synthesizer.sample_params(rng)  # drawn even for kept clips: same voices
                if not path.is_file():
                    out = synthesizer.synthesize(text, lang, **params._asdict())
                    atomic_write(
                        path,
                        lambda tmp, out=out: sf.write(
                            tmp, out.waveform, out.sample_rate, format=AUDIO_FORMAT
                        ),
                        fsync=False,  # cheap to synthesize again
                    )
                info = sf.info(str(path))
                rows.append(
                    {
                        "ID": f"{lang}_{uid}",
                        "duration": round(info.frames / info.samplerate, 3),
                        "wav": str(path.resolve()),
                        "language": lang,
                        "transcript": text,
                        "spans": slots,
                    }
                )
            write_slu_manifest(manifests[lang][split], rows)
            logger.info("%s %s: %d utterances", lang, split, len(rows))
    mark_done()
    return manifests


def manifests(folder: str, languages: list[str], split: str) -> list[str]:
    """The ``split`` manifests of ``languages`` in a prepared folder (hparams helper)."""
    return [os.path.join(folder, lang, f"{split}.csv") for lang in languages]


def test_manifests(folder: str, languages: list[str]) -> dict[str, str]:
    """``{language: test manifest}`` of a prepared folder (hparams helper)."""
    return dict(zip(languages, manifests(folder, languages, "test")))


@dataclass
class SLUDemoConfig:
    """Sizes of the SLU demo; the defaults reuse the demo's corpus and students."""

    output: str = "demo_slu"
    encoders: dict[str, str] = field(
        default_factory=lambda: {
            "SENSE (demo student)": "demo_output/train/model",
            "random student": "demo_output/model_before",
        }
    )
    languages: tuple[str, ...] = ("en", "fr", "de")
    #: Languages a probe is trained on (default: every language); each is tested on all.
    train_languages: tuple[str, ...] | None = None
    sentences: int = 800
    heldout: int = 100
    dev: int = 50
    epochs: int = 15
    extra_overrides: list[str] = field(default_factory=list)


def _table_path(cfg: SLUDemoConfig) -> str:
    return os.path.join(cfg.output, "table")


def train_one(cfg: SLUDemoConfig, name: str, source: str, lang: str) -> dict:
    """Fine-tune the probe on ``source`` with ``lang``'s training set; test on every language.

    Runs the recipe's ``train.py`` with its YAML and overrides, as a user
    does; returns the ``results`` of its ``summary.json``.
    """
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    data = os.path.abspath(os.path.join(cfg.output, "data"))
    output = os.path.abspath(os.path.join(cfg.output, slug, lang))
    argv = [
        HPARAMS,
        f"--data_folder={data}",
        f"--encoder_source={os.path.abspath(source)}",
        f"--model_name={name}",
        f"--train_language={lang}",
        f"--output_folder={output}",
        f"--results_folder={os.path.join(output, RESULTS)}",
        f"--results_table={os.path.abspath(_table_path(cfg))}",
        f"--number_of_epochs={cfg.epochs}",
        f"--languages=[{', '.join(cfg.languages)}]",
        "--skip_prep=True",
        "--device=cpu",
        *cfg.extra_overrides,
    ]
    run_recipe(RECIPE, argv)
    with open(os.path.join(output, RESULTS, SUMMARY), encoding="utf-8") as f:
        return json.load(f)["results"]


def summary_markdown(cfg: SLUDemoConfig, label_metric: str = "COER") -> str:
    """The COER and CVER matrices (train language x test language) of every encoder."""
    out = []
    for metric in (label_metric, "CVER"):
        table = ErrorRateTable.load(f"{_table_path(cfg)}_{metric}")
        header = "| " + metric + " train \\ test | " + " | ".join(cfg.languages) + " |"
        out += [f"**Held-out {metric} (%)**", ""]
        for model in table.models:
            out += [f"*{model}*", "", header, "|---|" + "---:|" * len(cfg.languages)]
            for train in cfg.train_languages or cfg.languages:
                cells = []
                for test in cfg.languages:
                    v = table.value(model, f"{train}-{test}")
                    cells.append("-" if v is None else f"{100 * v:.1f}")
                out.append(f"| {train} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def run(cfg: SLUDemoConfig) -> dict:
    """Prepare the corpus, train every (encoder, language), write ``summary.md``/``.json``."""
    prepare_demo_slu(
        os.path.join(cfg.output, "data"),
        list(cfg.languages),
        cfg.sentences,
        cfg.heldout,
        cfg.dev,
    )
    results = {}
    for name, source in cfg.encoders.items():
        for lang in cfg.train_languages or cfg.languages:
            logger.info("SLU probe on %s, trained on %s", name, lang)
            results.setdefault(name, {})[lang] = train_one(cfg, name, source, lang)
    text = summary_markdown(cfg)
    write_text_atomic(os.path.join(cfg.output, "summary.md"), text + "\n")
    write_text_atomic(
        os.path.join(cfg.output, "summary.json"),
        json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n",
    )
    print(text)
    return results


def main(argv=None) -> int:
    recipe_folder("DemoCorpus", "SLU")  # the demos run the checkout's recipes
    parser = argparse.ArgumentParser(
        prog="python -m sense.demo.slu", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--output", default="demo_slu", help="folder for everything written")
    parser.add_argument(
        "--encoder",
        action="append",
        metavar="NAME=SOURCE",
        help="an encoder to fine-tune (a sense model folder or an HF speech model); repeatable "
        "(default: the demo's trained and random students in demo_output/)",
    )
    parser.add_argument("--languages", default="en,fr,de", help="comma-separated")
    parser.add_argument(
        "--train-languages",
        help="comma-separated languages to train a probe on (default: every language); "
        "each probe is tested on every language",
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sentences", type=int, default=800)
    parser.add_argument("--heldout", type=int, default=100)
    parser.add_argument("--dev", type=int, default=50)
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s - %(message)s")
    cfg = SLUDemoConfig(
        output=args.output,
        languages=tuple(args.languages.split(",")),
        train_languages=tuple(args.train_languages.split(",")) if args.train_languages else None,
        sentences=args.sentences,
        heldout=args.heldout,
        dev=args.dev,
        epochs=args.epochs,
        extra_overrides=overrides,
    )
    unknown = set(cfg.train_languages or ()) - set(cfg.languages)
    if unknown:
        parser.error(f"--train-languages {', '.join(sorted(unknown))} not in --languages")
    if args.encoder:
        cfg.encoders = dict(e.split("=", 1) for e in args.encoder)
    missing = [s for s in cfg.encoders.values() if not os.path.exists(s)]
    if missing:
        parser.error(f"no such encoder: {', '.join(missing)} (run `python -m sense.demo` first)")
    run(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
