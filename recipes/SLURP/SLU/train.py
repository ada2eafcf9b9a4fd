#!/usr/bin/env python3
"""SLURP slot filling by CTC on encoder frames (SENSE paper, Table VII, EN).

Prepares the manifests (prepare_slurp.py), then fine-tunes, tests and exports
with the shared SLU entry point (:func:`sense.slu.recipe.run`)::

    python train.py hparams/train.yaml --data_folder=/data/slurp \\
        --encoder_source=/models/sense --model_name=SENSE
"""

from prepare_slurp import prepare_slurp

from sense.preflight import run_main
from sense.slu.recipe import run


def prepare(hparams: dict) -> None:
    prepare_slurp(
        hparams["data_folder"],
        hparams["prepared_folder"],
        train_splits=hparams["train_splits"],
        recordings=hparams["recordings"],
        audio_folder=hparams["audio_folder"],
    )


if __name__ == "__main__":
    run_main(lambda argv: run(argv, prepare=prepare))
