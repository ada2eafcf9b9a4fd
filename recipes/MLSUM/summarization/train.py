#!/usr/bin/env python3
"""Stage 1: train a summarizer on MLSUM French articles as sentence embeddings.

Every sentence is embedded once by the teacher's text encoder (cached on
disk); BARThez learns to write the article's summary from the sequence of
sentence vectors. The test set is summarised with beam search and scored
(ROUGE-L, BERTScore); the model is exported for stage 2 (DECODA).

    python train.py hparams/train_bge_m3.yaml --data_folder=/data/mlsum
"""

import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from mlsum_prepare import prepare_mlsum
from speechbrain.utils.distributed import run_on_main

from sense.finetune import resolve_device
from sense.summarization.recipe import run


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.utils.distributed.ddp_init_group(run_opts)
    run_opts = resolve_device(run_opts)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    kwargs = {
        "data_folder": hparams["data_folder"],
        "save_folder": hparams["prepared_folder"],
        "language": hparams["language"],
        "max_documents": hparams["max_documents"],
        "min_sentences": hparams["min_sentences"],
    }
    if not hparams["skip_prep"]:
        run_on_main(prepare_mlsum, kwargs=kwargs)
    manifests = prepare_mlsum(**kwargs)  # every rank: the paths (prepared already)
    stats = run(hparams, run_opts, manifests, hparams_file)
    print({k: round(v, 2) for k, v in stats.items()})


if __name__ == "__main__":
    main(sys.argv[1:])
