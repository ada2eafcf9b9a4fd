#!/usr/bin/env python3
"""Train a SENSE (or SAMU-XLSR) speech encoder on Common Voice by distillation.

The student (a speech encoder with masked attentive pooling) learns to
reproduce the frozen teacher's sentence embedding of each transcript, with the
cosine distance. The teacher encodes every transcript once, before training.
At the end, the best checkpoint is exported to a folder that
``sense.inference.SENSE.from_hparams(source=folder)`` loads.

One GPU::

    python train.py hparams/train_sense.yaml --data_folder=/data/cv-corpus-19.0

Several GPUs, several nodes::

    torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d \
        --rdzv_endpoint=$MASTER:29500 train.py hparams/train_sense.yaml \
        --data_folder=/data/cv-corpus-19.0 --precision=bf16
"""

import os
import sys

import speechbrain as sb
from commonvoice_prepare import prepare_common_voice
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from sense.distill import (
    TRAIN_LOADER_KEY,
    DistillationBrain,
    build_teacher_cache,
    make_datasets,
    make_train_loader,
    teacher_mean,
    teacher_partial_source,
)


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.utils.distributed.ddp_init_group(run_opts)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    if not hparams["skip_prep"]:
        run_on_main(
            prepare_common_voice,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": hparams["prepared_folder"],
                "languages": hparams["languages_file"],
                "splits": ["train", "dev"],
                "workers": hparams["prepare_workers"],
                "min_duration": hparams["min_duration"],
            },
        )

    cache = build_teacher_cache(hparams, [hparams["train_csv"], hparams["valid_csv"]])
    datasets = make_datasets(hparams, cache)
    train_loader, sampler = make_train_loader(hparams, datasets["train"])

    brain = DistillationBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    if hparams["teacher_centering"]:
        brain.teacher_center = teacher_mean(cache, hparams["train_csv"])
    brain.train_sampler = sampler  # SpeechBrain calls its set_epoch each epoch
    brain.checkpointer.add_recoverable(TRAIN_LOADER_KEY, train_loader)
    brain.fit(
        hparams["epoch_counter"],
        train_loader,
        datasets["valid"].filtered_sorted(sort_key="duration"),
        valid_loader_kwargs={"batch_size": hparams["valid_batch_size"]},
    )

    source, kind = teacher_partial_source(hparams["teacher"])
    brain.export(
        hparams["export_folder"],
        teacher_source=source,
        teacher_kind=kind,
        extra={"recipe": "CommonVoice/SENSE", "hparams": os.path.abspath(hparams_file)},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
