#!/usr/bin/env python3
"""SLU (slot filling) by a CTC probe on the synthesized demo corpus, no download.

The preparation synthesizes the demo corpus with its slots (person, object,
number, place, time) with espeak-ng; training, evaluation, result tables and
export are sense.slu.recipe.run, shared by every SLU recipe::

    python train.py hparams/train.yaml --data_folder=data \\
        --encoder_source=../../../demo_output/train/model --train_language=fr
"""

from sense.demo.slu import prepare_demo_slu
from sense.preflight import run_main
from sense.slu.recipe import run


def prepare(hparams):
    prepare_demo_slu(
        hparams["data_folder"],
        languages=list(hparams["languages"]),
        sentences=hparams["sentences"],
        heldout=hparams["heldout"],
        dev=hparams["dev"],
    )


if __name__ == "__main__":
    run_main(lambda argv: run(argv, prepare=prepare))
