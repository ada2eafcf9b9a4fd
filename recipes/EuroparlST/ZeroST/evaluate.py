#!/usr/bin/env python3
"""Table 1's reference rows on Europarl-ST: the Whisper -> NLLB cascade and the NLLB topline.

Both are scored by the harness ``train.py`` uses for ZeroST (sacrebleu BLEU-4
per direction, averaged over the targets of each source language, then over
the sources) and added to the same table:

* ``Whisper-NLLB cascade``: Whisper transcribes each segment (once, whatever
  the number of targets), NLLB translates the transcript;
* ``NLLB topline``: NLLB translates the ground-truth transcript.

    python evaluate.py /data/europarl-st/v1.1 --table results/zerost/table1 \\
        --whisper openai/whisper-large-v3 --nllb facebook/nllb-200-distilled-600M

``--manifests FOLDER`` reads prepared ``<src>-<tgt>_<split>.csv`` instead of a release.
"""

from __future__ import annotations

import argparse
import sys

import torch
from europarl_prepare import NLLB_CODES, prepare_europarl_st

from sense.preflight import check_writable
from sense.translation.metrics import BleuTable
from sense.zerost.evaluation import (
    TABLE1_TITLE,
    WhisperASR,
    add_system,
    cascade_translate_rows,
    nllb_translate_texts,
    read_direction_manifests,
    translate_directions,
)

CASCADE = "Whisper-NLLB cascade"
TOPLINE = "NLLB topline"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release", nargs="?", help="the Europarl-ST release (v1.1)")
    parser.add_argument("--manifests", help="a folder of prepared manifests instead")
    parser.add_argument("--prepared", default="results/zerost/europarl")
    parser.add_argument("--split", default="test")
    parser.add_argument("--languages", nargs="+", default=list(NLLB_CODES))
    parser.add_argument("--table", default="results/zerost/table1")
    parser.add_argument("--nllb", default="facebook/nllb-200-distilled-600M")
    parser.add_argument("--whisper", default="openai/whisper-large-v3")
    parser.add_argument("--no-cascade", action="store_true", help="the topline row only")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if bool(args.release) == bool(args.manifests):
        parser.error("give the release folder or --manifests, not both")
    try:
        check_writable(args.table, "--table")  # before the models and the translations
        if args.manifests:
            manifests = read_direction_manifests(args.manifests, args.split)
        else:
            manifests = prepare_europarl_st(args.release, args.prepared, args.languages, args.split)
        from transformers import AutoTokenizer, M2M100ForConditionalGeneration

        tokenizer = AutoTokenizer.from_pretrained(args.nllb)
        nllb = M2M100ForConditionalGeneration.from_pretrained(args.nllb).to(args.device).eval()
        asr = None if args.no_cascade else WhisperASR(args.whisper, args.device)
    except (OSError, ValueError) as err:
        parser.exit(2, f"evaluate: error: {err}\n")
    settings = {
        "beam_size": args.beam_size,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
    }
    systems = {
        TOPLINE: lambda rows: nllb_translate_texts(
            nllb,
            tokenizer,
            [row["transcript"] for row in rows],
            rows[0]["language"],
            rows[0]["target_language"],
            **settings,
        )
    }
    if asr is not None:
        transcripts = {}
        whisper_code = {code: lang for lang, code in NLLB_CODES.items()}
        systems[CASCADE] = lambda rows: cascade_translate_rows(
            asr, nllb, tokenizer, rows, whisper_code[rows[0]["language"]], transcripts, **settings
        )
    table = BleuTable.open(args.table, title=TABLE1_TITLE)
    for name, translate in systems.items():
        add_system(table, name, translate_directions(manifests, translate, desc=name))
        table.save(args.table)
    print(table.to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
