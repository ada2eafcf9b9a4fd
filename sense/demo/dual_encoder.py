"""The dual encoder with no download: the demo corpus, the demo student's tokens, a small LLM.

On a synthesized Common Voice-layout release (:mod:`sense.demo.commonvoice`,
six parallel languages): build a small LLM-architecture model (``GemmaModel``
from its config, a sentencepiece tokenizer trained on the training text),
write the CoVoST 2 dual-encoder recipe's manifests (speech/transcript pairs
of ``train_languages`` only, each X row with the English sentence of its
meaning), and run the recipe as a user does, ``python train.py
hparams/train.yaml`` with ``--skip_prep=True`` and overrides, with and
without 25% bitext (X text <-> EN text of the training languages). The
recipe fits k-means on the middle layer of the demo's speech encoder,
tokenises every clip once, trains and exports; each model is reloaded with
``DualEncoder.from_hparams`` and scored on the held-out sentences of every
language (the others are unseen in training):

- speech -> transcript R@1 among the held-out transcripts of its language,
  and the WER of the retrieved transcript;
- speech -> EN text R@1 among the held-out English sentences.

::

    python -m sense.demo.dual_encoder --release demo/commonvoice \\
        --speech-encoder demo/train/model --output results/dual_encoder_demo
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass

import soundfile as sf
import torch

from sense.demo.commonvoice import load_heldout
from sense.demo.corpus import LANGUAGES
from sense.demo.recipes import recipe_folder, run_recipe
from sense.evaluation.manifests import read_tsv
from sense.io import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

PIVOT = "en"
CONFIG_FILE = "config.json"
RECIPE, HPARAMS = ("CoVoST2", "dual_encoder"), "hparams/train.yaml"
#: The recipe's prepared manifests (``recipes/CoVoST2/ST/covost_prepare.py``'s columns).
MANIFEST_FIELDS = ("ID", "duration", "wav", "language", "transcript", "translation")
SPLITS = ("train", "dev")
#: The miniature's model settings the recipe's YAML sets otherwise.
PREFIX = "modality"
TOKENIZE_BATCH_SIZE = 8


@dataclass
class MiniatureConfig:
    """Settings of a miniature run (defaults: the README's run)."""

    release: str
    speech_encoder: str
    output: str
    languages: tuple = LANGUAGES
    train_languages: tuple = ("en", "fr", "de")
    output_layer: int | None = None  # None: the middle layer
    num_tokens: int = 64
    kmeans_frames: int = 50_000
    hidden_size: int = 64
    num_layers: int = 2
    embedding_dim: int = 64
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    temperature: float = 0.05
    bitext_ratios: tuple = (0.0, 0.25)
    max_train_per_language: int | None = None  # None: every training clip
    corpus_sentences: int = 800  # size of the demo's parallel corpus (for the translations)
    seed: int = 0
    device: str = "cpu"


def _clips(
    root: str, heldout: dict, langs, split: str, limit: int | None = None
) -> dict[str, list[tuple[str, str]]]:
    """``lang -> [(clip path, sentence key)]`` of one split.

    ``dev`` and ``test`` come from ``heldout.json`` (the key is the sentence id
    shared by every language); ``train`` from ``<lang>/train.tsv`` (the key is
    the transcript), its first ``limit`` rows when given.
    """
    if split == "train":
        out = {}
        for lang in langs:
            header, rows = read_tsv(os.path.join(root, lang, "train.tsv"), header=True)
            path, text = header.index("path"), header.index("sentence")
            rows = rows[:limit] if limit else rows
            out[lang] = [(os.path.join(root, lang, "clips", r[path]), r[text]) for r in rows]
        return out
    ids = set(heldout["splits"][split])
    return {
        lang: [
            (os.path.join(root, lang, "clips", clip), sid)
            for clip, sid in sorted(heldout["clips"][lang].items())
            if sid in ids
        ]
        for lang in langs
    }


def _text(heldout: dict, lang: str, key: str, split: str) -> str:
    return key if split == "train" else heldout["sentences"][key][lang]


def english_table(cfg: MiniatureConfig, heldout: dict) -> dict[str, dict[str, str]]:
    """``{language: {training transcript: English sentence of its meaning}}``.

    The demo's release is written from :func:`sense.demo.corpus.build_parallel_corpus`
    (``corpus_sentences``, seed 0): its rows give the translations.

    Raises
    ------
    ValueError
        A training transcript that is not in that corpus.
    """
    from sense.demo.corpus import build_parallel_corpus

    corpus = build_parallel_corpus(cfg.corpus_sentences, seed=0)
    train = _clips(cfg.release, heldout, cfg.train_languages, "train", cfg.max_train_per_language)
    table = {}
    for lang, rows in train.items():
        english = {row[lang]: row[PIVOT] for row in corpus}
        missing = sorted({text for _, text in rows} - set(english))
        if missing:
            raise ValueError(
                f"{cfg.release}: {lang} transcript {missing[0]!r} is not in the demo corpus; "
                f"is corpus_sentences={cfg.corpus_sentences} the release's corpus size?"
            )
        table[lang] = english
    return table


def write_manifests(cfg: MiniatureConfig, heldout: dict, folder: str) -> dict[str, str]:
    """The recipe's ``train.csv`` and ``dev.csv`` of the training languages; their paths."""
    from sense.prepare import write_manifest

    english = english_table(cfg, heldout)
    paths = {}
    for split in SPLITS:
        limit = cfg.max_train_per_language if split == "train" else None
        rows = [
            {
                "ID": os.path.splitext(os.path.basename(path))[0],
                "duration": f"{sf.info(path).duration:.3f}",
                "wav": os.path.abspath(path),
                "language": lang,
                "transcript": _text(heldout, lang, key, split),
                "translation": english[lang][key]
                if split == "train"
                else heldout["sentences"][key][PIVOT],
            }
            for lang, clips in _clips(
                cfg.release, heldout, cfg.train_languages, split, limit
            ).items()
            for path, key in clips
        ]
        paths[split] = os.path.join(folder, f"{split}.csv")
        write_manifest(paths[split], rows, MANIFEST_FIELDS)
    return paths


def _first_clip_per_sentence(rows):
    seen, out = set(), []
    for path, sid in rows:
        if sid not in seen:
            seen.add(sid)
            out.append((path, sid))
    return out


def speech_layer(cfg: MiniatureConfig) -> int:
    """The layer the audio tokens come from: ``output_layer``, or the encoder's middle one."""
    from sense.lobes.speech import load_config, resolve_encoder_source

    if cfg.output_layer is not None:
        return cfg.output_layer
    layers = load_config(resolve_encoder_source(cfg.speech_encoder)).num_hidden_layers
    return max(1, layers // 2)


def build_backbone(cfg: MiniatureConfig, heldout: dict) -> str:
    """A small ``GemmaModel`` from its config with a tokenizer trained on the training text."""
    from sense.demo.tiny import build_tiny_llm

    folder = os.path.join(cfg.output, "llm")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        train = _clips(cfg.release, heldout, cfg.languages, "train")
        texts = [text for rows in train.values() for _, text in rows]
        build_tiny_llm(folder, texts, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers)
    return folder


def _prepared(cfg: MiniatureConfig) -> str:
    """The recipe's ``prepared_folder``: manifests, centroids and token cache of every run."""
    return os.path.abspath(os.path.join(cfg.output, "data"))


def _run_folder(cfg: MiniatureConfig, bitext_ratio: float) -> str:
    """The recipe's ``output_folder`` of one bitext ratio."""
    return os.path.abspath(os.path.join(cfg.output, f"bitext{round(100 * bitext_ratio)}"))


def _source(path: str) -> str:
    """A local model folder by its absolute path; a hub id as it is."""
    return os.path.abspath(path) if os.path.exists(path) else path


def recipe_overrides(
    cfg: MiniatureConfig, manifests: dict[str, str], backbone: str, bitext_ratio: float
) -> list[str]:
    """The recipe's command line for one run of the miniature (its YAML's values replaced)."""
    from sense.dual_encoder.model import DEFAULT_MAX_TOKENS
    from sense.prepare import manifest_data

    train = manifest_data(manifests["train"])
    longest = max(row["duration"] for row in train.values())
    return [
        HPARAMS,
        f"--data_folder={os.path.abspath(cfg.release)}",
        "--skip_prep=True",
        f"--prepared_folder={_prepared(cfg)}",
        f"--train_csv={os.path.abspath(manifests['train'])}",
        f"--valid_csv={os.path.abspath(manifests['dev'])}",
        f"--output_folder={_run_folder(cfg, bitext_ratio)}",
        f"--seed={cfg.seed}",
        f"--bitext_ratio={bitext_ratio}",
        f"--speech_source={_source(cfg.speech_encoder)}",
        f"--speech_layer={speech_layer(cfg)}",
        f"--num_audio_tokens={cfg.num_tokens}",
        f"--kmeans_frames={cfg.kmeans_frames}",
        f"--kmeans_files={max(1, len(train) // 2)}",
        f"--tokenize_batch_size={TOKENIZE_BATCH_SIZE}",
        f"--llm_source={os.path.abspath(backbone)}",
        f"--prefix={PREFIX}",
        f"--max_tokens={DEFAULT_MAX_TOKENS}",
        f"--embedding_dim={cfg.embedding_dim}",
        f"--temperature={cfg.temperature}",
        f"--encoder_lr={cfg.lr}",
        f"--projection_lr={cfg.lr}",
        f"--number_of_epochs={cfg.epochs}",
        # batches of batch_size utterances: the duration budget never binds first
        f"--batch_seconds={cfg.batch_size * longest}",
        "--batch_seconds_scope=per_gpu",
        f"--max_batch_size={cfg.batch_size}",
        "--balancing_alpha=1.0",
        "--num_workers=0",
        f"--valid_batch_size={cfg.batch_size}",
        "--ckpt_interval_minutes=0",
        f"--device={cfg.device}",
    ]


def train(cfg, manifests: dict[str, str], backbone: str, bitext_ratio: float) -> str:
    """Run the recipe (resumable: its checkpoints) for one bitext ratio; its model folder."""
    run_recipe(recipe_folder(*RECIPE), recipe_overrides(cfg, manifests, backbone, bitext_ratio))
    return os.path.join(_run_folder(cfg, bitext_ratio), "model")


def evaluate(cfg, heldout, model_folder: str) -> dict[str, dict[str, dict]]:
    """Held-out results of every language, reloading the exported model.

    ``{"transcript": {lang: R@k, MRR, WER}, "en_text": {lang: R@k, MRR}}``:
    speech -> transcript among the held-out transcripts of its language, and
    speech -> EN text among the held-out English sentences. The test clips are
    tokenised once by the model's tokenizer into the recipe's token cache.
    """
    from sense.dual_encoder.inference import DualEncoder
    from sense.dual_encoder.metrics import transcript_metrics
    from sense.dual_encoder.tokens import TokenCache, tokenize_files
    from sense.retrieval import retrieval_metrics

    model = DualEncoder.from_hparams(source=model_folder, device=cfg.device)
    sentences = heldout["sentences"]
    test = _clips(cfg.release, heldout, cfg.languages, "test")
    paths = [os.path.abspath(p) for rows in test.values() for p, _ in rows]
    cache = TokenCache(os.path.join(_prepared(cfg), "token_cache"))
    tokens = tokenize_files(model.mods.audio_tokenizer, paths, cache, TOKENIZE_BATCH_SIZE)
    out = {"transcript": {}, "en_text": {}}
    for lang in cfg.languages:
        rows = _first_clip_per_sentence(test[lang])
        speech = model.encode_tokens([tokens[os.path.abspath(p)] for p, _ in rows])
        texts = [sentences[sid][lang] for _, sid in rows]
        out["transcript"][lang] = transcript_metrics(speech, model.encode_text(texts), texts, texts)
        english = model.encode_text([sentences[sid][PIVOT] for _, sid in rows])
        ks = tuple(k for k in (1, 5, 10) if k <= len(rows))
        out["en_text"][lang] = retrieval_metrics(speech, english, torch.arange(len(rows)), ks=ks)
    return out


def report(cfg: MiniatureConfig, results: dict[str, dict]) -> str:
    """Markdown tables: R@1 (%) and WER (%) per language and model."""
    seen = set(cfg.train_languages)
    names = [f"{x}{'' if x in seen else '*'}" for x in cfg.languages]
    header = "| model | " + " | ".join(names) + " |"
    rule = "|---" * (len(cfg.languages) + 1) + "|"
    n = next(iter(results.values()))["transcript"][cfg.languages[0]]["n_query"]
    lines = [
        f"Held-out sentences: {n} per language (chance R@1 {100 / n:.1f}%); "
        f"* = language unseen in training (trained on {', '.join(cfg.train_languages)}).",
        "",
    ]
    for title, task, metric in (
        ("X speech -> X transcript, R@1 (%)", "transcript", "R@1"),
        ("X speech -> X transcript, WER of the retrieved transcript (%)", "transcript", "WER"),
        ("X speech -> EN text, R@1 (%)", "en_text", "R@1"),
    ):
        lines += [f"**{title}**", "", header, rule]
        for name, result in results.items():
            cells = [f"{100 * result[task][x][metric]:.1f}" for x in cfg.languages]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def run_miniature(cfg: MiniatureConfig) -> dict[str, dict]:
    """Write the manifests, run the recipe with each bitext ratio, evaluate.

    Writes ``results.{json,md}``; the recipe's runs are in ``bitext<N>/``,
    the manifests, centroids and token cache they share in ``data/``.
    """
    os.makedirs(cfg.output, exist_ok=True)
    write_json_atomic(os.path.join(cfg.output, CONFIG_FILE), asdict(cfg), indent=1)
    heldout = load_heldout(cfg.release)
    backbone = build_backbone(cfg, heldout)
    manifests = write_manifests(cfg, heldout, _prepared(cfg))
    results = {}
    for ratio in cfg.bitext_ratios:
        model_folder = train(cfg, manifests, backbone, ratio)
        name = f"bitext {round(100 * ratio)}%" if ratio else "transcripts only"
        results[name] = evaluate(cfg, heldout, model_folder)
    write_json_atomic(os.path.join(cfg.output, "results.json"), results, indent=1)
    write_text_atomic(os.path.join(cfg.output, "results.md"), report(cfg, results) + "\n")
    return results


def main(argv=None) -> int:
    recipe_folder(*RECIPE)  # the demos run the checkout's recipes
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", required=True, help="demo Common Voice-layout release")
    parser.add_argument("--speech-encoder", required=True, help="speech encoder or sense model")
    parser.add_argument("--output", required=True)
    parser.add_argument("--epochs", type=int, default=MiniatureConfig.epochs)
    parser.add_argument("--num-tokens", type=int, default=MiniatureConfig.num_tokens)
    parser.add_argument("--max-train-per-language", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = MiniatureConfig(
        release=args.release,
        speech_encoder=args.speech_encoder,
        output=args.output,
        epochs=args.epochs,
        num_tokens=args.num_tokens,
        max_train_per_language=args.max_train_per_language,
        device=args.device,
    )
    results = run_miniature(cfg)
    print(report(cfg, results))
    print(json.dumps({"output": cfg.output}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
