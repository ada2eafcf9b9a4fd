#!/usr/bin/env python3
"""Speech-MASSIVE slot filling by CTC on encoder frames (SENSE paper, Table VII, FR).

Prepares the manifests (prepare_speech_massive.py), then fine-tunes, tests and
exports with the shared SLU entry point (:func:`sense.slu.recipe.run`)::

    python train.py hparams/train.yaml --data_folder=/data/Speech-MASSIVE \\
        --test_folder=/data/Speech-MASSIVE-test \\
        --encoder_source=/models/sense --model_name=SENSE
"""

from prepare_speech_massive import prepare_speech_massive

from sense.preflight import run_main
from sense.slu.recipe import run


def prepare(hparams: dict) -> None:
    prepare_speech_massive(
        hparams["data_folder"],
        hparams["prepared_folder"],
        locale=hparams["locale"],
        test_folder=hparams["test_folder"],
        train_split=hparams["train_split"],
        skip_reported=hparams["skip_reported"],
        workers=hparams["prepare_workers"],
    )


if __name__ == "__main__":
    run_main(lambda argv: run(argv, prepare=prepare))
