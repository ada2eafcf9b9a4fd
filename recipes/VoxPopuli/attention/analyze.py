#!/usr/bin/env python3
"""Where a SENSE model finds the meaning: the attention analysis of the paper's section VII.

Prepares the French VoxPopuli utterances that have English interpretations
(and their German interpretations), then writes Figure 2 (mean attention logit
against relative position), Figures 3 and 4 (one utterance and its German
interpretation, with voice activity and word boundaries), the first-frames
mass, Table IX and, with ``compare_pooling``, R@1 with the learned attention
against uniform mean pooling::

    python analyze.py hparams/attention.yaml --data_folder=/data/voxpopuli \
        --model=/models/sense --align_model=/models/wav2vec2-fr-ctc

See README.md for the layout, the options and what the paper reports.
"""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from attention_prepare import prepare_attention  # noqa: E402

logger = logging.getLogger(__name__)


def main(argv=None) -> dict:
    from speechbrain.utils.distributed import run_on_main

    from sense.analysis.run import analyze, build_aligner, load_utterances, load_vad
    from sense.analysis.settings import AnalysisSettings, PoolingComparison
    from sense.evaluation.recipe import load_experiment
    from sense.inference import SENSE

    hparams, run_opts = load_experiment(sys.argv[1:] if argv is None else argv)
    prepared: dict = {}
    run_on_main(
        lambda: prepared.update(
            prepare_attention(
                data_folder=hparams["data_folder"],
                save_folder=hparams["save_folder"],
                source_lang=hparams["source_lang"],
                pivot_lang=hparams["pivot_lang"],
                parallel_langs=hparams["parallel_langs"],
                years=hparams["years"],
                max_utterances=hparams["max_utterances"],
                manifest=hparams["manifest"],
            )
        )
    )
    device = run_opts.get("device") or hparams.get("device", "cpu")
    model = SENSE.from_hparams(
        source=hparams["model"], device=device, precision=run_opts.get("precision")
    )
    utterances, _ = load_utterances([prepared["utterances"]])
    summary = analyze(
        model,
        utterances,
        hparams["output_folder"],
        aligner=build_aligner(
            hparams["alignments"],
            hparams["tier"],
            hparams["align_model"],
            hparams["whisperx"],
            device,
        ),
        vad=load_vad(hparams["vad"]),
        examples=hparams["examples"] or (),
        comparison=(
            PoolingComparison(prepared["pairs"], hparams["model"])
            if hparams["compare_pooling"]
            else None
        ),
        settings=AnalysisSettings(
            edge_frames=hparams["edge_frames"],
            grid_size=hparams["grid_size"],
            top=hparams["top_words"],
            batch_size=hparams["batch_size"],
        ),
        progress=True,
    )
    print(summary["report"])
    return summary


if __name__ == "__main__":
    from sense.evaluation import run_as_script

    run_as_script(main)
