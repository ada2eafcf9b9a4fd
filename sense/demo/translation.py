"""The no-download proof of speech translation: X speech -> EN text on the demo corpus.

The demo corpus is parallel in six languages: sentence ``i`` in French,
German, Spanish, Italian and Russian translates sentence ``i`` in English.
This module writes, next to the demo's Common Voice release, the CoVoST 2
translation files (``covost_v2.<src>_en.tsv``: the clip, its transcript, the
English sentence of the same meaning, the Common Voice split), builds a small
mBART-architecture decoder from its config (random weights, a sentencepiece
vocabulary trained on the training sentences), and runs the CoVoST 2 recipe,
unchanged, once per speech encoder: the demo's trained SENSE student and the
random student it started from. Held-out BLEU of both lands in one Table
VI-shaped table.

    python -m sense.demo.translation --demo /work/demo_shared --output st_demo

By default the encoder is frozen: what the decoder can read from its frames
is what is compared. ``--no-freeze-encoder`` fine-tunes it too, at
``--encoder-lr``; ``--lr`` is the decoder's and the projection's rate.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

from sense.demo.corpus import LANGUAGES
from sense.demo.recipes import recipe_folder, run_recipe
from sense.demo.run import REPO, DemoConfig
from sense.io import write_text_atomic

RECIPE = os.path.join(REPO, "recipes", "CoVoST2", "ST")
SOURCES = tuple(lang for lang in LANGUAGES if lang != "en")
CV_SPLITS = ("train", "dev", "test")
#: The demo decoder: mBART architecture, small.
DECODER_HIDDEN = 128
DECODER_LAYERS = 2
DECODER_HEADS = 4
DECODER_VOCAB = 600
#: Adam rates: the decoder and the projection; the encoder when fine-tuned.
HEAD_LR = 1e-3
ENCODER_LR = 1e-4
#: Model name in the BLEU table -> its folder in the demo's output.
ENCODERS = {"SENSE demo student": "train/model", "random student": "model_before"}


def english_of(corpus_rows) -> dict[str, dict[str, str]]:
    """``{language: {sentence: English sentence}}`` of the demo corpus."""
    return {lang: {row[lang]: row["en"] for row in corpus_rows} for lang in SOURCES}


def write_covost_files(
    release: str, output: str, config: DemoConfig, sources: tuple[str, ...] = SOURCES
) -> list[str]:
    """Write ``covost_v2.<src>_en.tsv`` for each of ``sources`` in the release.

    Returns the English training sentences (for the decoder's vocabulary).
    """
    from sense.demo.corpus import build_parallel_corpus

    table = english_of(build_parallel_corpus(config.sentences, seed=0))
    os.makedirs(output, exist_ok=True)
    english_train = set()
    for lang in sources:
        lines = ["path\tsentence\ttranslation\tsplit"]
        for split in CV_SPLITS:
            with open(os.path.join(release, lang, f"{split}.tsv"), encoding="utf-8") as f:
                for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                    english = table[lang].get(row["sentence"])
                    if english is None:
                        raise ValueError(f"{lang}: {row['sentence']!r} is not in the demo corpus")
                    lines.append("\t".join((row["path"], row["sentence"], english, split)))
                    if split == "train":
                        english_train.add(english)
        write_text_atomic(os.path.join(output, f"covost_v2.{lang}_en.tsv"), "\n".join(lines) + "\n")
    return sorted(english_train)


def build_decoder(folder: str, texts: list[str]) -> str:
    """A small mBART-architecture decoder with a vocabulary trained on ``texts``."""
    from sense.demo.tiny import build_tiny_mbart

    if not os.path.isfile(os.path.join(folder, "config.json")):
        build_tiny_mbart(
            folder,
            texts=texts,
            hidden_size=DECODER_HIDDEN,
            num_layers=DECODER_LAYERS,
            vocab_size=DECODER_VOCAB,
            num_heads=DECODER_HEADS,
            ffn=4 * DECODER_HIDDEN,
        )
    return folder


def train(
    release: str,
    covost: str,
    output: str,
    name: str,
    encoder: str,
    decoder: str,
    encoder_dim: int,
    epochs: int,
    sources: tuple[str, ...] = SOURCES,
    extra: tuple[str, ...] = (),
    freeze_encoder: bool = True,
    encoder_lr: float = ENCODER_LR,
    lr: float = HEAD_LR,
) -> float:
    """Run the CoVoST 2 recipe with ``encoder``; the seconds it took."""
    argv = [
        "hparams/train.yaml",
        f"--data_folder={os.path.abspath(release)}",
        f"--covost_folder={os.path.abspath(covost)}",
        f"--prepared_folder={os.path.abspath(os.path.join(output, 'data'))}",
        f"--output_folder={os.path.abspath(os.path.join(output, name.replace(' ', '_')))}",
        f"--bleu_table={os.path.abspath(os.path.join(output, 'bleu_table'))}",
        f"--model_name={name}",
        f"--languages=[{', '.join(sources)}]",
        f"--encoder_source={os.path.abspath(encoder)}",
        f"--encoder_dim={encoder_dim}",
        f"--freeze_encoder={freeze_encoder}",
        f"--encoder_lr={encoder_lr}",
        "--gradient_checkpointing=False",
        f"--decoder_source={os.path.abspath(decoder)}",
        f"--decoder_dim={DECODER_HIDDEN}",
        f"--number_of_epochs={epochs}",
        f"--valid_search_interval={epochs}",
        f"--decoder_lr={lr}",
        f"--projection_lr={lr}",
        "--max_batch_size=16",
        "--batch_seconds=60",
        "--balancing_alpha=1.0",
        "--prepare_workers=2",
        "--num_workers=0",
        "--valid_batch_size=32",
        "--ckpt_interval_minutes=0",
        "--device=cpu",
        *extra,
    ]
    started = time.time()
    run_recipe(RECIPE, argv)
    return time.time() - started


def main(argv=None) -> int:
    recipe_folder("CoVoST2", "ST")  # the demos run the checkout's recipes
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", required=True, help="output folder of `python -m sense.demo`")
    parser.add_argument("--output", required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument(
        "--only", choices=sorted(ENCODERS), help="train with one encoder (default: both)"
    )
    parser.add_argument(
        "--languages",
        nargs="+",
        choices=SOURCES,
        default=list(SOURCES),
        help="source languages (default: every non-English language of the demo)",
    )
    parser.add_argument(
        "--freeze-encoder",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the speech encoder fixed (default); --no-freeze-encoder fine-tunes it",
    )
    parser.add_argument("--encoder-lr", type=float, default=ENCODER_LR)
    parser.add_argument("--lr", type=float, default=HEAD_LR, help="decoder and projection")
    args = parser.parse_args(argv)
    sources = tuple(args.languages)
    release = os.path.join(args.demo, "commonvoice")
    covost = os.path.join(args.output, "covost")
    english = write_covost_files(release, covost, DemoConfig(), sources)
    decoder = build_decoder(os.path.join(args.output, "decoder_init"), english)
    encoder_dim = json.load(open(os.path.join(args.demo, "train", "model", "meta.json")))[
        "encoder"
    ]["frame_dim"]
    times_file = os.path.join(args.output, "times.json")
    times = json.load(open(times_file)) if os.path.isfile(times_file) else {}
    for name, folder in ENCODERS.items():
        if args.only and name != args.only:
            continue
        encoder = os.path.join(args.demo, folder)
        times[name] = train(
            release,
            covost,
            args.output,
            name,
            encoder,
            decoder,
            encoder_dim,
            args.epochs,
            sources,
            freeze_encoder=args.freeze_encoder,
            encoder_lr=args.encoder_lr,
            lr=args.lr,
        )
        write_text_atomic(times_file, json.dumps(times, indent=2) + "\n")
    with open(os.path.join(args.output, "bleu_table.md"), encoding="utf-8") as f:
        print(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
