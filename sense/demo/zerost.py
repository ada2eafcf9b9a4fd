"""The no-download miniature of ZeroST: zero-shot speech translation on the demo corpus.

The paper's claim in small (``recipes/EuroparlST/ZeroST/README.md`` quotes a run):

1. a small NLLB-architecture text translator (sentencepiece vocabulary
   trained on the fly) learns the demo corpus's *text*, every direction
   among ``--languages``, on the training meanings; then it is frozen;
2. ZeroST learns from the demo's speech with *transcripts only*: the recipe
   (``train.py``, unchanged) runs the KD step, then the NLL step, over the
   demo's trained SENSE student; and the NLL step alone (the baseline);
3. on the held-out meanings (the demo's test split), X speech -> Y text for
   every pair, in Table 1's shape: ZeroST (KD→NLL), KD only and NLL only,
   beside the cascade built from the same parts (ZeroST decoding into the
   source language, i.e. recognition, then the text translator) and the text
   topline (the true transcript through the text translator).

    python -m sense.demo.zerost --demo /work/demo_shared --output zerost_demo
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time

import torch

from sense.demo.corpus import LANGUAGES, build_parallel_corpus
from sense.demo.recipes import recipe_folder, run_recipe
from sense.demo.run import REPO, DemoConfig
from sense.prepare import write_manifest

RECIPE = os.path.join(REPO, "recipes", "EuroparlST", "ZeroST")

#: The demo's languages as NLLB codes.
NLLB = {
    "en": "eng_Latn",
    "fr": "fra_Latn",
    "de": "deu_Latn",
    "es": "spa_Latn",
    "it": "ita_Latn",
    "ru": "rus_Cyrl",
}
SPLIT = "test"
#: The text translator: NLLB architecture, small.
TEXT_HIDDEN = 128
TEXT_LAYERS = 2
TEXT_HEADS = 4
TEXT_VOCAB = 1000
TEXT_BATCH = 32
TEXT_LR = 1e-3
#: Table 1 rows of the two trainings (``train.py`` names them ``<model> <step>``).
MODEL = "demo"
RUNS = ("KD", "KD→NLL", "NLL")
TABLE_TITLE = "Held-out X speech -> Y text BLEU on the demo corpus, averaged per source (Table 1)"


def read_split(release: str, lang: str, split: str) -> list[dict]:
    """Rows of the demo release's ``<lang>/<split>.tsv`` (Common Voice columns)."""
    with open(os.path.join(release, lang, f"{split}.tsv"), encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def write_heldout_manifests(
    release: str, folder: str, languages, config: DemoConfig
) -> dict[str, str]:
    """One manifest per direction X -> Y over the held-out clips, the recipe's ``eval_manifests``.

    The folder a user hands the recipe's ``train.py`` as ``--eval_manifests``
    (and its ``evaluate.py`` as ``--manifests``): direction manifests of
    :mod:`sense.zerost.evaluation`, as ``europarl_prepare.py`` writes them from
    Europarl-ST. Returns ``{"<src>-<tgt>": manifest path}``.
    """
    import soundfile as sf

    from sense.dataio import load_audio
    from sense.zerost.evaluation import DIRECTION_FIELDS, direction_manifest_name

    corpus = build_parallel_corpus(config.sentences, seed=0)
    index = {lang: {row[lang]: i for i, row in enumerate(corpus)} for lang in languages}
    os.makedirs(os.path.join(folder, "audio"), exist_ok=True)
    manifests = {}
    for src in languages:
        clips = []
        for row in read_split(release, src, SPLIT):
            wav = os.path.join(folder, "audio", os.path.splitext(row["path"])[0] + ".flac")
            if not os.path.isfile(wav):
                audio = load_audio(os.path.join(release, src, "clips", row["path"]))
                sf.write(wav, audio.numpy(), 16000)
            clips.append((row, wav, index[src][row["sentence"]]))
        for tgt in languages:
            if tgt == src:
                continue
            rows = [
                {
                    "ID": f"{os.path.splitext(row['path'])[0]}-{tgt}",
                    "duration": f"{sf.info(wav).duration:.3f}",
                    "wav": os.path.abspath(wav),
                    "language": NLLB[src],
                    "transcript": row["sentence"],
                    "translation": corpus[meaning][tgt],
                    "target_language": NLLB[tgt],
                }
                for row, wav, meaning in clips
            ]
            path = os.path.join(folder, direction_manifest_name(src, tgt, SPLIT))
            write_manifest(path, rows, DIRECTION_FIELDS)
            manifests[f"{src}-{tgt}"] = path
    return manifests


def train_text_translator(folder: str, release: str, languages, epochs: int, seed: int = 0):
    """The frozen NLLB stand-in: learns every direction among ``languages`` on training text."""
    from transformers import AutoTokenizer, M2M100ForConditionalGeneration

    from sense.demo.tiny import build_tiny_nllb

    if os.path.isfile(os.path.join(folder, "trained.json")):
        return folder
    corpus = build_parallel_corpus(DemoConfig().sentences, seed=0)
    seen = {lang: {r["sentence"] for r in read_split(release, lang, "train")} for lang in languages}
    train_meanings = [
        i for i, row in enumerate(corpus) if all(row[lang] in seen[lang] for lang in languages)
    ]
    init = build_tiny_nllb(
        folder + ".init",
        texts=[corpus[i][lang] for i in train_meanings for lang in languages],
        hidden_size=TEXT_HIDDEN,
        num_layers=TEXT_LAYERS,
        vocab_size=TEXT_VOCAB,
    )
    tokenizer = AutoTokenizer.from_pretrained(init)
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration.from_pretrained(init)
    batches = []
    for src in languages:
        for tgt in languages:
            if src == tgt:
                continue
            tokenizer.src_lang, tokenizer.tgt_lang = NLLB[src], NLLB[tgt]
            pairs = [(corpus[i][src], corpus[i][tgt]) for i in train_meanings]
            for b in range(0, len(pairs), TEXT_BATCH):
                chunk = pairs[b : b + TEXT_BATCH]
                batches.append(
                    tokenizer(
                        [s for s, _ in chunk],
                        text_target=[t for _, t in chunk],
                        padding=True,
                        return_tensors="pt",
                    )
                )
    opt = torch.optim.Adam(model.parameters(), lr=TEXT_LR)
    rng = random.Random(seed)
    model.train()
    for epoch in range(epochs):
        rng.shuffle(batches)
        total = 0.0
        for batch in batches:
            labels = batch["labels"].masked_fill(batch["labels"] == tokenizer.pad_token_id, -100)
            loss = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels
            ).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        print(f"text translator epoch {epoch + 1}: loss {total / len(batches):.3f}", flush=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with open(os.path.join(folder, "trained.json"), "w") as f:
        json.dump({"epochs": epochs, "meanings": len(train_meanings)}, f)
    return folder


def add_text_rows(nllb: str, manifests: dict, table_path: str, zerost: str | None = None):
    """Table 1's text rows: the topline and, with a ZeroST model, the cascade.

    Topline: the true transcripts through the text translator. Cascade, from
    the same parts: the ZeroST model decodes each clip into its own language
    (recognition), then the text translator translates that. Returns the
    recognition WER (%) per source language.
    """
    from jiwer import wer
    from transformers import AutoTokenizer, M2M100ForConditionalGeneration

    from sense.translation.metrics import BleuTable
    from sense.zerost.evaluation import add_system, nllb_translate_texts, translate_directions

    model = M2M100ForConditionalGeneration.from_pretrained(nllb).eval()
    tokenizer = AutoTokenizer.from_pretrained(nllb)

    def text_translate(texts, rows):
        return nllb_translate_texts(
            model,
            tokenizer,
            texts,
            rows[0]["language"],
            rows[0]["target_language"],
            beam_size=1,
            batch_size=64,
            max_new_tokens=48,
        )

    systems = {"text topline": lambda rows: text_translate([r["transcript"] for r in rows], rows)}
    transcripts, wers = {}, {}
    if zerost:
        from sense.zerost.inference import ZeroSTTranslator

        asr = ZeroSTTranslator.from_hparams(source=zerost, device="cpu")

        def cascade(rows):
            todo = sorted({r["wav"] for r in rows} - set(transcripts))
            if todo:
                found, failures = asr.translate_files(
                    todo, beam_size=1, target_lang=rows[0]["language"], batch_size=32
                )
                if failures:
                    raise ValueError(f"recognition failed: {failures[:3]}")
                transcripts.update(found)
                src = rows[0]["language"]
                wers[src] = 100 * wer(
                    [r["transcript"] for r in rows], [transcripts[r["wav"]] for r in rows]
                )
            return text_translate([transcripts[r["wav"]] for r in rows], rows)

        systems["cascade (ZeroST recognition -> text translator)"] = cascade
    table = BleuTable.open(table_path, title=TABLE_TITLE)
    for name, translate in systems.items():
        add_system(table, name, translate_directions(manifests, translate, desc=name))
    table.save(table_path)
    print(table.to_markdown(), flush=True)
    return wers


def train(args: list[str]) -> float:
    """``train.py`` of the ZeroST recipe with ``args``; the seconds it took."""
    started = time.time()
    run_recipe(RECIPE, args)
    return time.time() - started


def main(argv=None) -> int:
    recipe_folder("EuroparlST", "ZeroST")  # the demos run the checkout's recipes
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", required=True, help="output folder of `python -m sense.demo`")
    parser.add_argument("--output", required=True)
    parser.add_argument("--languages", nargs="+", choices=LANGUAGES, default=["en", "fr", "de"])
    parser.add_argument("--text-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each ZeroST step")
    parser.add_argument("--qformer", default="nllb", choices=["simple", "lite", "nllb"])
    parser.add_argument("--num-queries", type=int, default=32)
    parser.add_argument("--encoder", default="train/model", help="speech encoder, in --demo")
    parser.add_argument("--kd-projection", default="shared", choices=["shared", "separate", "none"])
    parser.add_argument("--name", default=MODEL, help="Table 1 row prefix")
    parser.add_argument(
        "--runs", nargs="+", default=list(RUNS), choices=list(RUNS), help="trainings to run"
    )
    parser.add_argument("--text-only", action="store_true", help="stop after the text translator")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.output)
    release = os.path.join(os.path.abspath(args.demo), "commonvoice")
    langs = list(args.languages)
    times = {}
    started = time.time()
    nllb = train_text_translator(os.path.join(out, "nllb_text"), release, langs, args.text_epochs)
    times["text translator"] = time.time() - started
    heldout = os.path.join(out, "heldout")
    manifests = write_heldout_manifests(release, heldout, langs, DemoConfig())
    add_text_rows(nllb, manifests, os.path.join(out, "table1"))
    if args.text_only:
        return 0
    common = [
        "hparams/train.yaml",
        f"--data_folder={release}",
        f"--prepared_folder={out}/data",
        f"--eval_manifests={heldout}",
        f"--table1={out}/table1",
        f"--table2={out}/table2",
        f"--languages=[{', '.join(langs)}]",
        f"--speech_source={os.path.join(os.path.abspath(args.demo), args.encoder)}",
        f"--nllb_source={nllb}",
        f"--d_model={TEXT_HIDDEN}",
        f"--qformer_type={args.qformer}",
        f"--num_queries={args.num_queries}",
        f"--kd_projection={args.kd_projection}",
        f"--number_of_epochs={args.epochs}",
        "--lr=0.001",
        "--batch_seconds=60",
        "--eval_beam_size=1",
        "--eval_batch_size=32",
        "--max_new_tokens=48",
        "--prepare_workers=2",
        "--num_workers=0",
        "--valid_batch_size=32",
        "--ckpt_interval_minutes=0",
        "--device=cpu",
    ]
    tag = args.name.replace(" ", "_")
    runs = {
        "KD": [f"--experiment_folder={out}/{tag}", "--zerost_step=kd"],
        "KD→NLL": [f"--experiment_folder={out}/{tag}", "--zerost_step=nll"],
        "NLL": [
            f"--experiment_folder={out}/{tag}_nll_only",
            "--zerost_step=nll",
            "--kd_checkpoint=null",
        ],
    }
    for name in args.runs:
        times[f"{args.name} {name}"] = train([*common, f"--model_name={args.name}", *runs[name]])
        print(json.dumps(times), flush=True)
    summary = {"times_s": times}
    model = os.path.join(out, tag, "nll", "model")
    if os.path.isdir(model):
        wers = add_text_rows(nllb, manifests, os.path.join(out, "table1"), model)
        summary["recognition_wer"] = {f"{args.name} {k}": v for k, v in wers.items()}
        print(json.dumps(summary["recognition_wer"]), flush=True)
    summary_file = os.path.join(out, "summary.json")
    if os.path.isfile(summary_file):
        old = json.load(open(summary_file))
        for key in summary:
            summary[key] = {**old.get(key, {}), **summary[key]}
    with open(summary_file, "w") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
