#!/usr/bin/env python3
"""TARIC-SLU slot filling by CTC on encoder frames (SENSE paper, Table VII, TN).

Prepares the manifests (prepare_taric.py), then fine-tunes, tests and exports
with the shared SLU entry point (:func:`sense.slu.recipe.run`)::

    python train.py hparams/train.yaml --data_folder=/data/TARIC-SLU \\
        --encoder_source=/models/sense --model_name=SENSE
"""

from prepare_taric import prepare_taric

from sense.preflight import run_main
from sense.slu.recipe import run


def prepare(hparams: dict) -> None:
    prepare_taric(
        hparams["data_folder"],
        hparams["prepared_folder"],
        annotation_column=hparams["annotation_column"],
    )


if __name__ == "__main__":
    run_main(lambda argv: run(argv, prepare=prepare))
