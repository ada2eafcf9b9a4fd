#!/usr/bin/env python3
"""Stage 1: train a summarizer on MLSUM French articles as sentence embeddings.

Every sentence is embedded once by the teacher's text encoder (cached on
disk); BARThez learns to write the article's summary from the sequence of
sentence vectors. The test set is summarised with beam search and scored
(ROUGE-L, BERTScore); the model is exported for stage 2 (DECODA).

    python train.py hparams/train_bge_m3.yaml --data_folder=/data/mlsum
"""

from mlsum_prepare import prepare_mlsum

from sense.preflight import run_main
from sense.summarization import recipe

PREPARE_ARGS = {
    "data_folder": "data_folder",
    "save_folder": "prepared_folder",
    "language": "language",
    "max_documents": "max_documents",
    "min_sentences": "min_sentences",
}


def main(argv):
    return recipe.main(argv, prepare_mlsum, PREPARE_ARGS)


if __name__ == "__main__":
    run_main(main)
