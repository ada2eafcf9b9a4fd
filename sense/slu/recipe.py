"""The training entry point every SLU recipe's ``train.py`` calls.

A dataset recipe keeps only its preparation (release format -> SLU manifests,
:mod:`sense.slu.data`) and its hparams; :func:`run` does the rest: the label
markup, the CTC probe on the chosen encoder, fine-tuning with
:class:`~sense.slu.brain.SLUBrain`, evaluation of every test set with the best
checkpoint, Table V / VII-shaped result tables and the export::

    # recipes/<Dataset>/SLU/train.py
    import sys
    from sense.slu.recipe import run
    from mydata_prepare import prepare_mydata

    def prepare(hparams):
        prepare_mydata(hparams["data_folder"], hparams["prepared_folder"])

    if __name__ == "__main__":
        run(sys.argv[1:], prepare=prepare)

``python train.py hparams/x.yaml [--overrides] [--prepare_only]``; SpeechBrain's
run options (``--device``, ``--precision``, ``--debug``, ``torchrun``) work.

The hparams must set :data:`REQUIRED_KEYS` (checked first, with a message
naming what is missing); :data:`OPTIONAL_KEYS` have defaults. See
``recipes/DemoCorpus/SLU/hparams/train.yaml``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from speechbrain.utils.distributed import if_main_process, run_on_main

from sense.finetune import open_experiment
from sense.io import write_json_atomic
from sense.preflight import PreflightError, materialize, require_files, require_keys
from sense.prepare import read_manifest
from sense.results import ErrorRateTable
from sense.slu.brain import HEAD, SLUBrain, check_probe
from sense.slu.data import make_slu_datasets, markup_from_manifests
from sense.slu.markup import LabelMarkup

logger = logging.getLogger(__name__)

PREPARE_ONLY = "--prepare_only"
MARKUP_FILE = "markup.json"
#: What an SLU recipe's YAML must set. ``test_csvs``: column name -> manifest (a
#: test set, or ``<train lang>-<test lang>`` for Table V); ``probe``: a
#: ``!name:sense.nnet.heads.CTCProbe`` partial (``input_dim``, ``num_symbols``
#: are filled here); the optimizer classes are partials taking parameters; the
#: checkpointer's recoverables are the encoder, the counter and the schedulers
#: (the probe is added here).
REQUIRED_KEYS = (
    "output_folder",
    "save_folder",
    "train_log",
    "export_folder",
    "train_csv",
    "valid_csv",
    "test_csvs",
    "sample_rate",
    "encoder",
    "probe",
    "encoder_opt_class",
    "probe_opt_class",
    "epoch_counter",
    "checkpointer",
    "train_logger",
    "train_dataloader_opts",
    "valid_dataloader_opts",
    "test_dataloader_opts",
)
#: Optional keys and what they mean when absent.
OPTIONAL_KEYS = {
    "skip_prep": "False: run the recipe's preparation",
    "markup_csvs": "[train_csv]: manifests whose characters and labels make the alphabet",
    "column_prefix": "'': prepended to the column names (<train lang>- for Table V)",
    "encoder_lr_annealing": "none",
    "probe_lr_annealing": "none",
    "encoder_freeze_steps": "0",
    "model_name": "'model': the row of the result tables",
    "label_metric": "COER or NEER, from the labels",
    "select_metric": "CVER",
    "compute_slu_f1": "False",
    "results_folder": "<output_folder>/results",
    "results_table": "<results_folder>/table, a table several runs fill",
}
SECONDS_PER_HOUR = 3600.0


def prepare_markup(path: str, manifests: list[str]) -> None:
    """Build the markup of ``manifests`` into ``path``, unless a run already saved one there.

    A resumed run keeps the markup its checkpoints were trained with.
    """
    if os.path.isfile(path):
        return
    markup = markup_from_manifests(manifests)
    markup.save(path)
    logger.info("label markup: %s, saved to %s", markup, path)


def manifest_hours(path: str) -> float:
    """Hours of audio listed in a manifest."""
    return sum(float(row["duration"]) for row in read_manifest(path)) / SECONDS_PER_HOUR


def write_tables(hparams: dict, results: dict[str, dict], label_metric: str) -> dict[str, str]:
    """Add this run's row to the label-metric and CVER tables; their paths (stems)."""
    stem = hparams.get("results_table") or os.path.join(_results_folder(hparams), "table")
    model = hparams.get("model_name", "model")
    paths = {}
    for metric in (label_metric, "CVER"):
        path = f"{stem}_{metric}"
        table = ErrorRateTable.open(path, title=f"{metric} (%)", metric=metric)
        for column, result in results.items():
            values = {k: v / 100.0 for k, v in result["metrics"].items() if k != "loss"}
            table.add(model, column, values, n_query=result["num_utterances"] or None)
        table.save(path)
        paths[metric] = path
    return paths


def check_manifests(plan: dict) -> dict[str, str]:
    """The test manifests ``{column: path}``, once every manifest the run reads is there.

    Raises
    ------
    sense.preflight.PreflightError
        Naming the missing manifests (before any model is loaded).
    """
    require_files(plan, ["train_csv", "valid_csv"], "prepare them first (skip_prep: False)")
    prefix = plan.get("column_prefix") or ""
    tests = {f"{prefix}{k}": v for k, v in (materialize(plan.get("test_csvs")) or {}).items()}
    missing = [f"{name} {path}" for name, path in tests.items() if not os.path.isfile(path)]
    if missing:
        raise PreflightError("test_csvs: missing " + ", ".join(missing))
    return tests


def _results_folder(hparams: dict) -> str:
    return hparams.get("results_folder") or os.path.join(hparams["output_folder"], "results")


def run(argv: list[str], prepare: Callable[[dict], None] | None = None) -> dict | None:
    """Prepare, fine-tune, evaluate and export an SLU model from a recipe's hparams.

    Parameters
    ----------
    argv : list of str
        ``[hparams_file, --overrides..., run options...]``; ``--prepare_only``
        stops after the preparation and the markup.
    prepare : callable, optional
        ``prepare(hparams)`` writes the manifests; run on the main process
        unless ``skip_prep``, before any model is loaded: it gets the hparams
        with no object built (:func:`sense.preflight.peek_hparams`).

    Returns
    -------
    dict or None
        ``{test column: {"metrics": ..., "num_utterances": N}}`` (``None``
        with ``--prepare_only``).
    """
    prepare_only = PREPARE_ONLY in argv
    argv = [a for a in argv if a != PREPARE_ONLY]
    # The data first, from the hparams with no model built (the encoder loads after).
    experiment = open_experiment(argv)
    plan = experiment.plan
    require_keys(plan, REQUIRED_KEYS, "the SLU recipe (sense.slu.recipe)", experiment.hparams_file)
    if prepare is not None and not plan.get("skip_prep", False):
        run_on_main(prepare, args=[plan])
    test_csvs = check_manifests(plan)
    markup_path = os.path.join(plan["save_folder"], MARKUP_FILE)
    markup_csvs = list(materialize(plan.get("markup_csvs")) or [plan["train_csv"]])
    run_on_main(prepare_markup, args=[markup_path, markup_csvs])
    markup = LabelMarkup.load(markup_path)
    if prepare_only:
        if if_main_process():
            print(f"prepared; label markup {markup} in {markup_path}")
        return None

    hparams, run_opts = experiment.load(), experiment.run_opts
    encoder = hparams["encoder"]
    probe = hparams["probe"](input_dim=encoder.output_dim, num_symbols=len(markup))
    check_probe(encoder, probe, markup)
    checkpointer = hparams["checkpointer"]
    checkpointer.add_recoverable(HEAD, probe)
    datasets = make_slu_datasets(
        {"train": hparams["train_csv"], "valid": hparams["valid_csv"], **test_csvs},
        markup,
        hparams["sample_rate"],
    )
    brain = SLUBrain(
        modules={"encoder": encoder, HEAD: probe},
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=checkpointer,
        markup=markup,
    )
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    folder = _results_folder(hparams)
    results = {
        name: brain.evaluate_split(name, datasets[name], folder, **hparams["test_dataloader_opts"])
        for name in test_csvs
    }
    if if_main_process() and results:
        summary = {
            "model": hparams.get("model_name", "model"),
            "train_hours": manifest_hours(hparams["train_csv"]),
            "results": results,
        }
        write_json_atomic(os.path.join(folder, "summary.json"), summary, indent=2)
        for path in write_tables(hparams, results, brain.label_metric).values():
            with open(f"{path}.md", encoding="utf-8") as f:
                print(f.read())
    brain.export(
        hparams["export_folder"],
        extra={"hparams": os.path.abspath(experiment.hparams_file), "test": results},
    )
    return results
