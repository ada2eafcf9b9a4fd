#!/usr/bin/env python3
"""Train a SENSE (or SAMU-XLSR) speech encoder on Common Voice by distillation.

The student (a speech encoder with masked attentive pooling) learns to
reproduce the frozen teacher's sentence embedding of each transcript, with the
cosine distance. The teacher encodes every transcript once, before training,
each rank its share. At the end, the best checkpoint is exported to a folder
that ``sense.inference.SENSE.from_hparams(source=folder)`` loads.

One GPU::

    python train.py hparams/train_sense.yaml --data_folder=/data/cv-corpus-19.0

Several nodes: prepare and cache once, then launch::

    python train.py hparams/train_sense.yaml --data_folder=... --prepare_only
    torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=$MASTER:29500 train.py hparams/train_sense.yaml \\
        --data_folder=/data/cv-corpus-19.0 --skip_prep=True --precision=bf16
"""

import os

from commonvoice_prepare import prepare_common_voice
from speechbrain.utils.distributed import if_main_process, run_on_main

from sense.distill import (
    DistillationBrain,
    build_teacher_cache,
    check_dimensions,
    make_datasets,
    make_train_loader,
    teacher_mean,
)
from sense.finetune import open_experiment
from sense.preflight import materialize, require_files, run_main
from sense.samplers import BatchBudget

PREPARE_ONLY = "--prepare_only"
MANIFEST_KEYS = ("train_csv", "valid_csv")


def main(argv):
    prepare_only = PREPARE_ONLY in argv
    argv = [a for a in argv if a != PREPARE_ONLY]
    # The data first, from the hparams with no model built: the student is loaded
    # only once the data is prepared and its teacher embeddings cached.
    experiment = open_experiment(argv)
    plan, run_opts = experiment.plan, experiment.run_opts
    device = run_opts["device"]
    if not plan["skip_prep"]:
        run_on_main(
            prepare_common_voice,
            kwargs={
                "data_folder": plan["data_folder"],
                "save_folder": plan["prepared_folder"],
                "languages": plan["languages_file"],
                "splits": ["train", "dev"],
                "workers": plan["prepare_workers"],
                "min_duration": plan["min_duration"],
            },
        )
    require_files(plan, MANIFEST_KEYS, "prepare them first (skip_prep: False)")
    manifests = {"train": plan["train_csv"], "valid": plan["valid_csv"]}
    cache = build_teacher_cache(
        materialize(plan["teacher"]),  # a TeacherSpec: the teacher loads only if encoding
        list(manifests.values()),
        plan["teacher_cache_folder"],
        device=device,
        batch_size=plan["teacher_batch_size"],
        dtype=plan["teacher_cache_dtype"],
    )
    if prepare_only:
        if if_main_process():
            print(f"prepared {plan['prepared_folder']}; teacher cache {cache.folder}")
        return

    hparams_file, hparams = experiment.hparams_file, experiment.load()
    check_dimensions(hparams["encoder"], hparams["pooling"], cache.dim)
    datasets = make_datasets(manifests, cache, hparams["sample_rate"])
    budget = BatchBudget.for_this_run(
        hparams["batch_seconds"],
        hparams["batch_seconds_scope"],
        hparams["grad_accumulation_factor"],
    )
    train_loader = make_train_loader(
        datasets["train"], budget, hparams["number_of_epochs"], **hparams["train_loader_options"]
    )

    brain = DistillationBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    if hparams["teacher_centering"]:
        brain.teacher_center = teacher_mean(cache, hparams["train_csv"])
    brain.use_train_loader(train_loader)
    brain.fit(
        hparams["epoch_counter"],
        train_loader,
        datasets["valid"].filtered_sorted(sort_key="duration"),
        valid_loader_kwargs={"batch_size": hparams["valid_batch_size"]},
    )
    brain.export(
        hparams["export_folder"],
        teacher=hparams["teacher"],
        extra={"recipe": "CommonVoice/SENSE", "hparams": os.path.abspath(hparams_file)},
    )


if __name__ == "__main__":
    run_main(main)
