#!/usr/bin/env python3
"""Train ZeroST on transcribed speech (KD, then NLL) and score it on Europarl-ST (Table 1).

Step 1 (``--zerost_step=kd``) teaches the Q-Former the frozen NLLB encoder's
token embeddings of each transcript (encoded once into a cache); step 2
(``--zerost_step=nll``) starts from step 1's best checkpoint and trains the
frozen NLLB decoder's input with teacher forcing. Both use Adam with the
paper's three-phase schedule. After either step the best checkpoint
translates Europarl-ST (when ``europarl_folder`` is set) from each language
into each other one; the per-source BLEU goes to Table 1 as row
``<model_name> <step>`` and the average to Table 2 under ``num_queries``.
After the NLL step the model is exported for
``sense.zerost.inference.ZeroSTTranslator`` and ``sense translate``.

    python train.py hparams/train.yaml --data_folder=/data/cv-corpus-16.1 --zerost_step=kd
    python train.py hparams/train.yaml --data_folder=/data/cv-corpus-16.1 --zerost_step=nll \\
        --europarl_folder=/data/europarl-st/v1.1

``--prepare_only`` stops after the data (and, for the KD step, the NLLB token
cache): the Q-Former, Whisper and the NLLB decoder are never loaded.
"""

import math
import os

from europarl_prepare import prepare_europarl_st
from speechbrain.utils.distributed import if_main_process, run_on_main
from zerost_prepare import prepare_zerost_data

from sense.distill import make_train_loader
from sense.finetune import open_experiment, three_phase_schedule
from sense.preflight import require_files, run_main
from sense.prepare import manifest_dataset, read_manifest
from sense.samplers import BatchBudget
from sense.teacher_cache import TeacherCacheError
from sense.translation.metrics import BleuTable
from sense.zerost.brain import KD, NLL, ZeroSTBrain, add_zerost_pipelines
from sense.zerost.cache import NLLBTokenEncoder, TokenEmbeddingCache
from sense.zerost.evaluation import (
    AVERAGE,
    TABLE1_TITLE,
    TABLE2_TITLE,
    add_system,
    read_direction_manifests,
    translate_directions,
    zerost_translate_rows,
)


def step_label(step: str, kd_checkpoint) -> str:
    """Table 1's loss column: ``KD``, ``NLL`` (from scratch) or ``KD→NLL``."""
    if step == KD:
        return "KD"
    return "KD→NLL" if kd_checkpoint else "NLL"


def build_token_cache(manifests, source: str, folder: str, device: str) -> None:
    """Encode every transcript with the frozen NLLB encoder into ``folder``, once.

    A cache that already holds every transcript is left as it is, and NLLB
    is not loaded (a restarted KD step, another Q-Former or number of queries).
    """
    items, langs = {}, {}
    for path in manifests:
        for row in read_manifest(path):
            items[row["ID"]] = row["transcript"]
            langs[row["ID"]] = row["language"]
    try:
        TokenEmbeddingCache.open(folder).verify(items, langs)
        return
    except TeacherCacheError:
        pass
    TokenEmbeddingCache.build(folder, items, NLLBTokenEncoder(source).to(device), langs)


def make_datasets(manifests: dict, step: str, decoder, cache_folder: str | None, rate: int):
    cache = TokenEmbeddingCache.open(cache_folder) if step == KD else None
    return {
        split: add_zerost_pipelines(
            manifest_dataset(path),
            decoder=decoder if step == NLL else None,
            token_cache=cache,
            sample_rate=rate,
        )
        for split, path in manifests.items()
    }


def evaluation_manifests(hparams: dict) -> dict[str, str]:
    """``{"<src>-<tgt>": manifest}``: prepared from the release, or read from a folder."""
    if hparams["eval_manifests"]:
        return read_direction_manifests(hparams["eval_manifests"], hparams["europarl_split"])
    if hparams["europarl_folder"]:
        return prepare_europarl_st(
            hparams["europarl_folder"],
            hparams["europarl_prepared"],
            hparams["eval_languages"],
            hparams["europarl_split"],
        )
    return {}


def evaluate(brain: ZeroSTBrain, hparams: dict, manifests: dict, row: str) -> None:
    """Translate every direction; add ``row`` to Tables 1 and 2 (main process)."""
    modules = brain.modules
    for module in modules.values():
        module.eval()
    directions = translate_directions(
        manifests,
        lambda rows: zerost_translate_rows(
            modules.encoder,
            modules.qformer,
            modules.decoder,
            rows,
            hparams["eval_beam_size"],
            hparams["eval_batch_size"],
            hparams["max_new_tokens"],
        ),
        desc=f"Europarl-ST: {row}",
    )
    table1 = BleuTable.open(hparams["table1"], title=TABLE1_TITLE)
    scores = add_system(table1, row, directions)
    table1.save(hparams["table1"])
    table2 = BleuTable.open(hparams["table2"], title=TABLE2_TITLE)
    table2.add(row, str(hparams["num_queries"]), table1.value(row, AVERAGE))
    table2.save(hparams["table2"])
    with open(os.path.join(hparams["output_folder"], "europarl_bleu.tsv"), "w") as f:
        f.writelines(f"{s}-{t}\t{bleu:.2f}\n" for (s, t), bleu in sorted(scores.items()))
    print(table1.to_markdown(), flush=True)


PREPARE_ONLY = "--prepare_only"


def main(argv):
    prepare_only = PREPARE_ONLY in argv
    argv = [a for a in argv if a != PREPARE_ONLY]
    # The data first (training and evaluation), from the hparams with no model built.
    experiment = open_experiment(argv)
    plan, run_opts = experiment.plan, experiment.run_opts
    step = plan["zerost_step"]
    manifests = {"train": plan["train_csv"], "valid": plan["valid_csv"]}
    if not plan["skip_prep"]:
        run_on_main(
            prepare_zerost_data,
            kwargs={
                "data_folder": plan["data_folder"],
                "save_folder": plan["prepared_folder"],
                "languages": plan["languages"],
                "workers": plan["prepare_workers"],
                "min_duration": plan["min_duration"],
                "extra_codes": plan["nllb_codes"],
            },
        )
    require_files(plan, ["train_csv", "valid_csv"], "prepare them first (skip_prep: False)")
    eval_manifests = evaluation_manifests(plan) if if_main_process() else {}
    cache_folder = None
    if step == KD:
        key = NLLBTokenEncoder.key_of(plan["nllb_source"])
        cache_folder = os.path.join(plan["token_cache_folder"], key)
        kwargs = {
            "manifests": list(manifests.values()),
            "source": plan["nllb_source"],
            "folder": cache_folder,
            "device": run_opts["device"],
        }
        run_on_main(build_token_cache, kwargs=kwargs)
    if prepare_only:
        if if_main_process():
            print(f"prepared {plan['prepared_folder']}; {len(eval_manifests)} evaluation pairs")
        return
    hparams_file, hparams = experiment.hparams_file, experiment.load()
    datasets = make_datasets(
        manifests, step, hparams["modules"]["decoder"], cache_folder, hparams["sample_rate"]
    )
    budget = BatchBudget.for_this_run(
        hparams["batch_seconds"],
        hparams["batch_seconds_scope"],
        hparams["grad_accumulation_factor"],
    )
    epochs = hparams["number_of_epochs"]
    train_loader = make_train_loader(
        datasets["train"], budget, epochs, **hparams["train_loader_options"]
    )
    steps = epochs * math.ceil(len(train_loader) / budget.grad_accumulation)
    schedule = three_phase_schedule(hparams["lr"], steps, hparams["lr_phases"])
    hparams["encoder_lr_schedule"] = hparams["head_lr_schedule"] = schedule
    brain = ZeroSTBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.use_train_loader(train_loader)
    brain.fit(
        hparams["epoch_counter"],
        train_loader,
        datasets["valid"].filtered_sorted(sort_key="duration"),
        valid_loader_kwargs={"batch_size": hparams["valid_batch_size"]},
    )
    brain.load_best(min_key="loss")
    row = f"{hparams['model_name']} {step_label(step, hparams['kd_checkpoint'])}"
    if eval_manifests:
        evaluate(brain, hparams, eval_manifests, row)
    if step == NLL:  # a KD-step model is a baseline, not a translator to ship
        brain.export(
            hparams["export_folder"],
            extra={"recipe": "EuroparlST/ZeroST", "hparams": os.path.abspath(hparams_file)},
            beam_size=hparams["eval_beam_size"],
            max_new_tokens=hparams["max_new_tokens"],
        )


if __name__ == "__main__":
    run_main(main)
