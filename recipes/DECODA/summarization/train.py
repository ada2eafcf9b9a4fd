#!/usr/bin/env python3
"""Stage 2: specialise the stage-1 summarizer on DECODA dialogues as utterance embeddings.

Each dialogue's recording is cut into its turns (the release's Transcriber
segmentation, or the silence splitter), every turn is embedded once by the
SENSE speech encoder (cached on disk), and the stage-1 model (MLSUM, text
embeddings of the same teacher family) learns to write the synopsis. The test
set is summarised and scored; the row joins the Table VIII table.

    python train.py hparams/train_sense.yaml --data_folder=/data/decoda \\
        --speech_model=/models/sense --init_from=/path/to/stage1/model
"""

from decoda_prepare import prepare_decoda

from sense.preflight import run_main
from sense.summarization import recipe

PREPARE_ARGS = {
    "data_folder": "data_folder",
    "save_folder": "prepared_folder",
    "utterance_seconds": "utterance_seconds",
}


def main(argv):
    return recipe.main(argv, prepare_decoda, PREPARE_ARGS)


if __name__ == "__main__":
    run_main(main)
