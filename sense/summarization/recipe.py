"""What the summarization recipes share: cache, train, test, export, Table VIII row.

A recipe's ``train.py`` prepares its manifests (``train``, ``valid``, ``test``:
see :mod:`sense.summarization.data`) and calls :func:`main`; its hparams must
set :data:`REQUIRED_KEYS` (checked first, with a message naming what is
missing), and with ``embedder: text`` a ``teacher`` (a TeacherSpec, optional
``teacher_center_file``), with ``embedder: speech`` a ``speech_model`` (a SENSE
folder); ``init_from`` is an exported summarizer of an earlier stage, or null.
"""

from __future__ import annotations

import logging
import os

import torch

from sense.summarization.brain import SummarizationBrain
from sense.summarization.data import cache_items, make_dataset, read_manifest
from sense.summarization.embeddings import (
    SpeechSegmentEmbedder,
    TextEmbedder,
    build_document_cache,
)
from sense.summarization.export import (
    DEFAULT_UTTERANCE_SECONDS,
    SummarizerSettings,
    export_summarizer,
    load_projection,
)
from sense.summarization.table import add_table_row

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
#: What a summarization recipe's YAML must set (with what
#: :class:`~sense.summarization.brain.SummarizationBrain` reads).
REQUIRED_KEYS = (
    "output_folder",
    "skip_prep",
    "embedder",
    "embedding_cache_folder",
    "embedding_batch_size",
    "max_units",
    "seq2seq",
    "projection",
    "init_from",
    "checkpointer",
    "epoch_counter",
    "batch_size",
    "num_beams",
    "max_new_tokens",
    "export_folder",
    "table_file",
    "table_row",
)
EMBEDDERS = ("text", "speech")
PREPARE_ONLY = "--prepare_only"


def embedder_factory(hparams: dict, device: str):
    """``(make_embedder, cache folder name)`` of the recipe's embedder."""
    kind = hparams["embedder"]
    if kind == "text":
        spec = hparams["teacher"]
        center_file = hparams.get("teacher_center_file")
        center = (
            torch.load(center_file, map_location="cpu", weights_only=True) if center_file else None
        )
        name = spec.key + ("-centred" if center is not None else "")
        return (lambda: TextEmbedder(spec, center=center, device=device)), name
    if kind == "speech":
        from sense.io import content_fingerprint

        folder = hparams["speech_model"]
        name = f"sense-{content_fingerprint(folder)}"
        return (lambda: SpeechSegmentEmbedder.from_folder(folder, device=device)), name
    raise ValueError(f"embedder must be one of {EMBEDDERS}, got {kind!r}")


def build_caches(hparams: dict, manifests: dict, device: str):
    """Embed every unit of every split once; the cache (shared by the splits)."""
    make_embedder, name = embedder_factory(hparams, device)
    documents = {}
    for path in manifests.values():
        documents.update(cache_items(read_manifest(path)))
    return build_document_cache(
        documents,
        make_embedder,
        os.path.join(hparams["embedding_cache_folder"], name),
        batch_size=hparams["embedding_batch_size"],
    )


def materialize_embedder(plan: dict) -> dict:
    """The plan with its embedder's settings built (a TeacherSpec loads no model)."""
    from sense.preflight import materialize

    return {**plan, "teacher": materialize(plan.get("teacher"))}


def run(hparams: dict, run_opts: dict, manifests: dict, hparams_file: str) -> dict:
    """Train (or resume), test with generation, export, and add the Table VIII row.

    Returns
    -------
    dict
        The test metrics (``loss``, ``ROUGE-L``, optionally ``BERTScore-F1``).
    """
    import speechbrain as sb
    from speechbrain.utils.distributed import if_main_process

    cache = build_caches(hparams, manifests, run_opts["device"])
    if cache.dim != hparams["projection"].input_dim:
        raise ValueError(
            f"the embeddings are {cache.dim}-dim, the projection takes "
            f"{hparams['projection'].input_dim} (set embedding_dim)"
        )
    datasets = {
        split: make_dataset(manifests[split], cache, hparams["max_units"]) for split in SPLITS
    }
    init_from = hparams.get("init_from")
    if init_from and hparams["checkpointer"].find_checkpoint() is None:
        load_projection(hparams["projection"], init_from)  # the seq2seq comes via its source
    brain = SummarizationBrain(
        modules={"encoder": hparams["seq2seq"], "projection": hparams["projection"]},
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    loader = {"batch_size": hparams["batch_size"], "collate_fn": sb.dataio.batch.PaddedBatch}
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs={**loader, "shuffle": True},
        valid_loader_kwargs=loader,
    )
    brain.evaluate(datasets["test"], min_key="loss", test_loader_kwargs=loader)
    stats = dict(brain.test_stats)
    if if_main_process():
        export_summarizer(
            hparams["export_folder"],
            hparams["seq2seq"],
            hparams["projection"],
            teacher=hparams.get("teacher"),
            speech_model=hparams.get("speech_model"),
            settings=SummarizerSettings(
                num_beams=hparams["num_beams"],
                max_new_tokens=hparams["max_new_tokens"],
                max_units=hparams["max_units"],
                utterance_seconds=hparams.get("utterance_seconds", DEFAULT_UTTERANCE_SECONDS),
            ),
            extra={"hparams": os.path.abspath(hparams_file), "test": stats},
        )
        if hparams.get("table_file"):
            add_table_row(hparams["table_file"], hparams["table_row"], stats)
    return stats


def main(argv: list[str], prepare, prepare_args: dict[str, str]) -> dict:
    """A summarization recipe's ``train.py``: check, prepare on the main process, :func:`run`.

    Before any model is loaded: the output paths are checked writable, the
    BERTScore model loadable (:func:`~sense.summarization.metrics.check_bertscore`),
    and the data prepared, its sentences embedded into the cache.
    ``--prepare_only`` stops there (the seq2seq is never loaded).

    Parameters
    ----------
    argv : list of str
        ``hparams.yaml`` and SpeechBrain options / overrides; ``--prepare_only``.
    prepare : callable
        The recipe's prepare function; returns ``{split: manifest path}`` and
        is cheap once its stamp says it is done.
    prepare_args : dict
        ``{keyword of prepare: hparams key}``.
    """
    from speechbrain.utils.distributed import run_on_main

    from sense.finetune import open_experiment
    from sense.preflight import require_keys
    from sense.summarization.metrics import check_bertscore

    prepare_only = PREPARE_ONLY in argv
    argv = [a for a in argv if a != PREPARE_ONLY]
    experiment = open_experiment(argv)
    plan, run_opts = experiment.plan, experiment.run_opts
    recipe = "a summarization recipe (sense.summarization.recipe)"
    require_keys(plan, REQUIRED_KEYS, recipe, experiment.hparams_file)
    if not prepare_only:
        check_bertscore(plan.get("bertscore"))
    kwargs = {name: plan[key] for name, key in prepare_args.items()}
    if not plan["skip_prep"]:
        run_on_main(prepare, kwargs=kwargs)
    manifests = prepare(**kwargs)  # every rank: the paths (prepared already)
    if prepare_only:
        cache = build_caches(materialize_embedder(plan), manifests, run_opts["device"])
        print(f"prepared {list(manifests.values())}; embeddings {cache.folder}", flush=True)
        return {}
    stats = run(experiment.load(), run_opts, manifests, experiment.hparams_file)
    print({k: round(v, 2) for k, v in stats.items()}, flush=True)
    return stats
