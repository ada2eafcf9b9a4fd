"""The dual encoder with no download: the demo corpus, the demo student's tokens, a small LLM.

On a synthesized Common Voice-layout release (:mod:`sense.demo.commonvoice`,
six parallel languages): fit k-means on the middle layer of the demo's speech
encoder, tokenise every clip once, extend a small LLM-architecture model
(``GemmaModel`` built from its config, a sentencepiece tokenizer trained on
the training text), train the dual encoder on speech/transcript pairs of
``train_languages`` only, with and without 25% bitext (X text <-> EN text of
the training languages), export each model and reload it with
``DualEncoder.from_hparams``, then report on the held-out sentences, for every
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
import functools
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass

import torch

from sense.demo.commonvoice import load_heldout
from sense.demo.corpus import LANGUAGES
from sense.evaluation.manifests import read_tsv
from sense.io import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

PIVOT = "en"
CONFIG_FILE = "config.json"


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
    corpus_sentences: int = 800  # size of the demo's parallel corpus (for the bitext)
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


def _manifest(cfg, heldout, split: str, tokens, token_rate: float) -> dict[str, dict]:
    clips = _clips(cfg.release, heldout, cfg.train_languages, split, cfg.max_train_per_language)
    return {
        os.path.basename(path): {
            "wav": path,
            "duration": max(len(tokens[path]), 1) / token_rate,
            "language": lang,
            "wrd": _text(heldout, lang, key, split),
        }
        for lang, rows in clips.items()
        for path, key in rows
    }


def bitext_pairs(cfg: MiniatureConfig, heldout: dict) -> list[tuple[str, str, str]]:
    """``(X text, X, EN text)`` of the training meanings, X a training language other than EN.

    The demo's release is written from :func:`sense.demo.corpus.build_parallel_corpus`
    (``corpus_sentences``, seed 0): its rows whose texts are all training
    transcripts give the translations.
    """
    from sense.demo.corpus import build_parallel_corpus

    langs = [x for x in cfg.train_languages if x != PIVOT]
    train = _clips(cfg.release, heldout, [PIVOT, *langs], "train")
    known = {lang: {text for _, text in rows} for lang, rows in train.items()}
    pairs = [
        (row[x], x, row[PIVOT])
        for row in build_parallel_corpus(cfg.corpus_sentences, seed=0)
        if row[PIVOT] in known[PIVOT]
        for x in langs
        if row[x] in known[x]
    ]
    if langs and len(pairs) < len(langs) * len(known[PIVOT]) // 2:
        raise ValueError(
            f"{cfg.release}: only {len(pairs)} bitext pairs match the training transcripts; "
            f"is corpus_sentences={cfg.corpus_sentences} the release's corpus size?"
        )
    return pairs


def _first_clip_per_sentence(rows):
    seen, out = set(), []
    for path, sid in rows:
        if sid not in seen:
            seen.add(sid)
            out.append((path, sid))
    return out


def prepare_tokens(cfg: MiniatureConfig, heldout: dict):
    """The audio tokenizer (k-means fitted on training clips) and every clip's tokens (cached)."""
    from sense.dual_encoder.tokens import AudioTokenizer, TokenCache, fit_centroids, tokenize_files
    from sense.lobes.speech import load_config, resolve_encoder_source

    layers = load_config(resolve_encoder_source(cfg.speech_encoder)).num_hidden_layers
    layer = cfg.output_layer if cfg.output_layer is not None else max(1, layers // 2)
    tokenizer = AudioTokenizer(cfg.speech_encoder, output_layer=layer, num_tokens=cfg.num_tokens)
    tokenizer.to(cfg.device)
    train = _clips(cfg.release, heldout, cfg.train_languages, "train", cfg.max_train_per_language)
    paths = [p for rows in train.values() for p, _ in rows]
    os.makedirs(cfg.output, exist_ok=True)
    fit_centroids(
        tokenizer,
        paths,
        os.path.join(cfg.output, "centroids.pt"),
        cfg.kmeans_frames,
        sample_files=max(1, len(paths) // 2),
        seed=cfg.seed,
    )
    every = paths + [
        p
        for split in ("dev", "test")
        for rows in _clips(cfg.release, heldout, cfg.languages, split).values()
        for p, _ in rows
    ]
    tokens = tokenize_files(tokenizer, every, TokenCache(os.path.join(cfg.output, "token_cache")))
    return tokenizer, tokens


def build_backbone(cfg: MiniatureConfig, heldout: dict) -> str:
    """A small ``GemmaModel`` from its config with a tokenizer trained on the training text."""
    from sense.demo.tiny import build_tiny_llm

    folder = os.path.join(cfg.output, "llm")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        train = _clips(cfg.release, heldout, cfg.languages, "train")
        texts = [text for rows in train.values() for _, text in rows]
        build_tiny_llm(folder, texts, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers)
    return folder


def train(cfg, heldout, tokenizer, tokens, backbone: str, bitext_ratio: float) -> str:
    """Train one dual encoder (resumable) and export it; returns the model folder."""
    from speechbrain.utils.epoch_loop import EpochCounter
    from speechbrain.utils.train_logger import FileTrainLogger

    from sense.checkpoints import AtomicCheckpointer
    from sense.distill import make_train_loader
    from sense.dual_encoder.brain import DualEncoderBrain, make_datasets
    from sense.dual_encoder.model import LLMEncoder
    from sense.losses import InfoNCELoss
    from sense.samplers import BatchBudget

    folder = os.path.join(cfg.output, f"bitext{round(100 * bitext_ratio)}")
    model_folder = os.path.join(folder, "model")
    manifests = {
        split: _manifest(cfg, heldout, split, tokens, tokenizer.token_rate)
        for split in ("train", "dev")
    }
    torch.manual_seed(cfg.seed)
    llm = LLMEncoder(backbone, num_audio_tokens=cfg.num_tokens)
    projection = torch.nn.Linear(llm.output_dim, cfg.embedding_dim)
    datasets = make_datasets(manifests, tokens, llm)
    counter = EpochCounter(cfg.epochs)
    hparams = {
        "loss": InfoNCELoss(cfg.temperature),
        "encoder_opt_class": functools.partial(torch.optim.Adam, lr=cfg.lr),
        "projection_opt_class": functools.partial(torch.optim.Adam, lr=cfg.lr),
        "train_logger": FileTrainLogger(os.path.join(folder, "train_log.txt")),
        "epoch_counter": counter,
        "bitext_ratio": bitext_ratio,
        "seed": cfg.seed,
    }
    checkpointer = AtomicCheckpointer(
        os.path.join(folder, "save"),
        recoverables={"encoder": llm, "projection": projection, "counter": counter},
    )
    brain = DualEncoderBrain(
        modules={"encoder": llm, "projection": projection},
        hparams=hparams,
        run_opts={"device": cfg.device, "noprogressbar": True},
        checkpointer=checkpointer,
    )
    brain.bitext = bitext_pairs(cfg, heldout) if bitext_ratio else []
    # batches of batch_size utterances: the duration budget never binds first
    longest = max(r["duration"] for r in manifests["train"].values())
    loader = make_train_loader(
        datasets["train"],
        BatchBudget(cfg.batch_size * longest, "per_gpu"),
        cfg.epochs,
        balancing_alpha=1.0,
        max_batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    brain.use_train_loader(loader)
    brain.fit(
        counter,
        loader,
        datasets["dev"],
        valid_loader_kwargs={"batch_size": cfg.batch_size},
    )
    brain.export(model_folder, tokenizer, extra={"bitext_ratio": bitext_ratio, **asdict(cfg)})
    return model_folder


def evaluate(cfg, heldout, tokens, model_folder: str) -> dict[str, dict[str, dict]]:
    """Held-out results of every language, reloading the exported model.

    ``{"transcript": {lang: R@k, MRR, WER}, "en_text": {lang: R@k, MRR}}``:
    speech -> transcript among the held-out transcripts of its language, and
    speech -> EN text among the held-out English sentences.
    """
    from sense.dual_encoder.inference import DualEncoder
    from sense.dual_encoder.metrics import transcript_metrics
    from sense.retrieval import retrieval_metrics

    model = DualEncoder.from_hparams(source=model_folder, device=cfg.device)
    sentences = heldout["sentences"]
    test = _clips(cfg.release, heldout, cfg.languages, "test")
    out = {"transcript": {}, "en_text": {}}
    for lang in cfg.languages:
        rows = _first_clip_per_sentence(test[lang])
        speech = model.encode_tokens([tokens[p] for p, _ in rows])
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
    """Tokenise, train with each bitext ratio, evaluate; writes ``results.{json,md}``."""
    os.makedirs(cfg.output, exist_ok=True)
    write_json_atomic(os.path.join(cfg.output, CONFIG_FILE), asdict(cfg), indent=1)
    heldout = load_heldout(cfg.release)
    tokenizer, tokens = prepare_tokens(cfg, heldout)
    backbone = build_backbone(cfg, heldout)
    results = {}
    for ratio in cfg.bitext_ratios:
        model_folder = train(cfg, heldout, tokenizer, tokens, backbone, ratio)
        name = f"bitext {round(100 * ratio)}%" if ratio else "transcripts only"
        results[name] = evaluate(cfg, heldout, tokens, model_folder)
    write_json_atomic(os.path.join(cfg.output, "results.json"), results, indent=1)
    write_text_atomic(os.path.join(cfg.output, "results.md"), report(cfg, results) + "\n")
    return results


def main(argv=None) -> int:
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
