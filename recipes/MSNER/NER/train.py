#!/usr/bin/env python3
"""MSNER named entities by CTC on encoder frames (SENSE paper, Table V).

Prepares the manifests of the four languages (prepare_msner.py), then
fine-tunes on ``train_language``, tests on every language and exports with
the shared SLU entry point (:func:`sense.slu.recipe.run`)::

    for lang in nl es fr de; do
        python train.py hparams/train.yaml --msner_folder=/data/msner \\
            --voxpopuli_folder=/data/voxpopuli --train_language=$lang \\
            --encoder_source=/models/sense --encoder_name=SENSE
    done
"""

from prepare_msner import prepare_msner

from sense.preflight import run_main
from sense.slu.recipe import run


def prepare(hparams: dict) -> None:
    prepare_msner(
        hparams["msner_folder"],
        hparams["voxpopuli_folder"],
        hparams["prepared_folder"],
        languages=hparams["languages"],
        variant=hparams["variant"],
    )


if __name__ == "__main__":
    run_main(lambda argv: run(argv, prepare=prepare))
