#!/usr/bin/env python3
"""Train X -> EN speech translation on CoVoST 2 and write the Table VI BLEU row.

A speech encoder (a sense model folder or a plain SSL model) feeds the mBART-50
(or NLLB) decoder through a feed-forward projection. After training, the best
checkpoint (dev BLEU, greedy) decodes the test set with beam search; the
per-language BLEU is added to the shared table as row ``model_name``, and the
model is exported for ``sense.translation.Translator.from_hparams``.

    python train.py hparams/train.yaml --data_folder=/data/cv-corpus-4 \\
        --covost_folder=/data/covost_tsv --encoder_source=/models/sense --model_name=SENSE

``--prepare_only`` stops after the manifests (no model is loaded).
"""

import json
import os

from covost_prepare import prepare_covost
from speechbrain.utils.distributed import if_main_process, run_on_main

from sense.distill import make_train_loader
from sense.finetune import open_experiment
from sense.preflight import require_files, run_main
from sense.samplers import BatchBudget
from sense.translation.brain import TranslationBrain, make_datasets
from sense.translation.metrics import BleuTable

TABLE_TITLE = "BLEU, X speech -> EN text (CoVoST 2), as Table VI of the SENSE paper"
PREPARE_ONLY = "--prepare_only"
MANIFEST_KEYS = ("train_csv", "valid_csv", "test_csv", "hours_file")


def main(argv):
    prepare_only = PREPARE_ONLY in argv
    argv = [a for a in argv if a != PREPARE_ONLY]
    # The data first, from the hparams with no model built (encoder and decoder load after).
    experiment = open_experiment(argv)
    plan = experiment.plan
    if not plan["skip_prep"]:
        run_on_main(
            prepare_covost,
            kwargs={
                "data_folder": plan["data_folder"],
                "covost_folder": plan["covost_folder"],
                "save_folder": plan["prepared_folder"],
                "languages": plan["languages"],
                "workers": plan["prepare_workers"],
                "min_duration": plan["min_duration"],
            },
        )
    require_files(plan, MANIFEST_KEYS, "prepare them first (skip_prep: False)")
    if prepare_only:
        if if_main_process():
            print(f"prepared {plan['prepared_folder']}", flush=True)
        return
    hparams_file, hparams, run_opts = (
        experiment.hparams_file,
        experiment.load(),
        experiment.run_opts,
    )
    manifests = {"train": hparams["train_csv"], "valid": hparams["valid_csv"]}
    manifests["test"] = hparams["test_csv"]
    datasets = make_datasets(manifests, hparams["decoder"], hparams["sample_rate"])
    budget = BatchBudget.for_this_run(
        hparams["batch_seconds"],
        hparams["batch_seconds_scope"],
        hparams["grad_accumulation_factor"],
    )
    train_loader = make_train_loader(
        datasets["train"], budget, hparams["number_of_epochs"], **hparams["train_loader_options"]
    )
    brain = TranslationBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.use_train_loader(train_loader)
    eval_kwargs = {"batch_size": hparams["valid_batch_size"]}
    brain.fit(
        hparams["epoch_counter"],
        train_loader,
        datasets["valid"].filtered_sorted(sort_key="duration"),
        valid_loader_kwargs=eval_kwargs,
    )
    brain.evaluate(
        datasets["test"].filtered_sorted(sort_key="duration"),
        max_key="BLEU",
        test_loader_kwargs=eval_kwargs,
    )
    if if_main_process():
        with open(hparams["hours_file"], encoding="utf-8") as f:
            hours = json.load(f)
        table = BleuTable.open(hparams["bleu_table"], title=TABLE_TITLE)
        for lang, bleu in brain.test_bleu.items():
            table.add(hparams["model_name"], lang, bleu, hours=hours.get(lang))
        table.save(hparams["bleu_table"])
        print(table.to_markdown(), flush=True)
    brain.export(
        hparams["export_folder"],
        extra={"recipe": "CoVoST2/ST", "hparams": os.path.abspath(hparams_file)},
        beam_size=hparams["test_beam_size"],
        length_penalty=hparams["length_penalty"],
        max_decode_ratio=hparams["max_decode_ratio"],
        min_decode_tokens=hparams["min_decode_tokens"],
    )


if __name__ == "__main__":
    run_main(main)
