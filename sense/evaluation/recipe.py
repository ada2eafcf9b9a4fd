"""The whole ``evaluate.py`` of a retrieval recipe, driven by its hparams.

This is the one place that reads a recipe's hparams dict: everything it calls
(:func:`build_encoders`, :func:`run_benchmark`, the recipe's ``prepare``)
takes explicit arguments.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from sense.evaluation.cache import EmbeddingCache
from sense.evaluation.encoders import build_encoders
from sense.evaluation.manifests import parse_pair
from sense.evaluation.runner import run_benchmark

logger = logging.getLogger(__name__)

#: What a retrieval recipe's YAML must set: ``models`` (the systems to compare,
#: :func:`build_encoders`), where prepared pairs go, and a ``pairs`` list or ``tables``.
REQUIRED_KEYS = ("output_folder", "save_folder", "models")


def load_experiment(argv: Sequence[str]) -> tuple[dict, object]:
    """``(hparams, run_opts)`` of a SpeechBrain command line; the experiment folder created.

    ``argv`` is ``hparams.yaml --key=value ...``; the YAML and the overrides are
    saved in ``output_folder``, as every SpeechBrain recipe does. The models
    are specifications here (built by :func:`build_encoders` after the data
    is prepared); every output path the hparams name is checked writable
    first (:func:`sense.preflight.check_outputs`).
    """
    import speechbrain as sb
    from hyperpyyaml import load_hyperpyyaml

    from sense.preflight import check_outputs

    hparams_file, run_opts, overrides = sb.parse_arguments(list(argv))
    with open(hparams_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    check_outputs(hparams)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    return hparams, run_opts


def run_recipe(
    argv: Sequence[str], prepare: Callable[[dict], Mapping[str, str]]
) -> dict[str, dict[str, dict]]:
    """The whole ``evaluate.py`` of a retrieval recipe.

    ``python evaluate.py hparams/evaluate.yaml --data_folder=... --models="[a, b]"``:
    reads the hparams (SpeechBrain command line), prepares the pairs with
    ``prepare(hparams) -> {pair: folder}`` (on the main process), embeds them
    with every model of ``models`` (:func:`build_encoders`) and writes the
    table in ``output_folder``.
    """
    from speechbrain.utils.distributed import run_on_main

    from sense.preflight import require_keys

    hparams, run_opts = load_experiment(argv)
    require_keys(hparams, REQUIRED_KEYS, "a retrieval recipe (sense.evaluation.recipe)", argv[0])
    data_folder = hparams.get("data_folder")
    if data_folder is not None and not os.path.isdir(data_folder):
        raise FileNotFoundError(f"--data_folder {data_folder}: no such folder")
    tables = _recipe_tables(hparams)
    hparams["pairs"] = list(dict.fromkeys(p for t in tables.values() for p in t["pairs"]))
    prepared: dict[str, Mapping[str, str]] = {}
    run_on_main(lambda: prepared.update(out=prepare(hparams)))
    folders = dict(prepared.get("out") or {})
    if "out" in prepared:  # the main process knows which pairs were skipped
        tables = {
            name: {**t, "pairs": [p for p in t["pairs"] if p in folders]}
            for name, t in tables.items()
        }
        tables = {name: t for name, t in tables.items() if t["pairs"]}
    for pair in hparams["pairs"]:
        folders.setdefault(pair, os.path.join(hparams["save_folder"], pair))
    device = run_opts.get("device") or hparams.get("device", "cpu")
    encoders = build_encoders(hparams["models"], device=device)
    cache = EmbeddingCache(hparams["cache_folder"]) if hparams.get("cache_folder") else None
    results: dict[str, dict[str, dict]] = {}
    for name, table in tables.items():
        out = run_benchmark(
            encoders,
            {pair: folders[pair] for pair in table["pairs"]},
            output_folder=hparams["output_folder"],
            cache_folder=cache,
            ks=hparams.get("ks", (1, 5, 10)),
            mean_subtract=hparams.get("mean_subtract", True),
            batch_size=hparams.get("batch_size", 8),
            text_batch_size=hparams.get("text_batch_size"),
            metric=hparams.get("metric", "R@1"),
            title=table.get("title"),
            group=table.get("group"),
            table_name=name,
        )
        for model, per_pair in out.items():
            results.setdefault(model, {}).update(per_pair)
    return results


def prepare_present_pairs(
    pairs: Sequence[str], prepare_one: Callable[[str], str]
) -> dict[str, str]:
    """``{pair: folder}`` of the pairs whose data is there; the others are skipped, with a warning.

    A partial download is the norm (a few languages of 100): ``prepare_one``
    raising ``FileNotFoundError`` skips that pair; none left is an error.

    Example
    -------
    >>> def one(pair):
    ...     if pair == "pl-en":
    ...         raise FileNotFoundError("no S2S manifest for pl->en")
    ...     return f"out/{pair}"
    >>> prepare_present_pairs(["fr-en", "pl-en"], one)
    {'fr-en': 'out/fr-en'}
    """
    out, skipped = {}, []
    for pair in pairs:
        try:
            out[pair] = prepare_one(pair)
        except FileNotFoundError as err:
            logger.warning("skipping %s: %s", pair, err)
            skipped.append(f"{pair} ({err})")
    if not out:
        raise FileNotFoundError("no pair has its data: " + "; ".join(skipped))
    if skipped:
        logger.warning(
            "evaluating %d pair(s), skipped %d: %s",
            len(out),
            len(skipped),
            ", ".join(p.split(" ", 1)[0] for p in skipped),
        )
    return out


def run_as_script(main: Callable[[], object]) -> None:
    """Run a recipe's ``main``; a data or configuration error is one line, not a traceback.

    Example
    -------
    >>> def main():
    ...     raise FileNotFoundError("/data/fleurs: no such folder")
    >>> run_as_script(main)  # doctest: +SKIP
    evaluate.py: error: /data/fleurs: no such folder
    """
    try:
        main()
    except (FileNotFoundError, ValueError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        sys.exit(f"{os.path.basename(sys.argv[0])}: error: {message}")


def _recipe_tables(hparams: Mapping) -> dict[str, dict]:
    """The tables a recipe writes: ``{file name: {pairs, title, group}}``.

    ``tables`` in the hparams maps a table name to its ``pairs`` (columns, in
    order), ``title`` and ``group``; without it, one table ``retrieval`` of
    every pair of ``pairs``. When both are given, ``pairs`` restricts the
    tables to those columns (so ``--pairs=[fr-en]`` runs one pair).
    """
    wanted = hparams.get("pairs")
    if wanted is not None:
        wanted = [str(p) for p in wanted]
        for pair in wanted:
            parse_pair(pair)
    specs = hparams.get("tables")
    if not specs:
        if not wanted:
            raise ValueError("no pair to evaluate: set `pairs` (e.g. [fr-en, de-en])")
        return {
            "retrieval": {
                "pairs": wanted,
                "title": hparams.get("title"),
                "group": hparams.get("group"),
            }
        }
    tables = {}
    for name, spec in specs.items():
        pairs = [str(p) for p in spec.get("pairs", [])]
        if wanted is not None:
            pairs = [p for p in pairs if p in wanted]
        if pairs:
            tables[str(name)] = {**spec, "pairs": pairs}
    if wanted is not None:
        listed = {p for t in tables.values() for p in t["pairs"]}
        extra = [p for p in wanted if p not in listed]
        if extra:
            tables["retrieval"] = {
                "pairs": extra,
                "title": hparams.get("title"),
                "group": hparams.get("group"),
            }
    if not tables:
        raise ValueError("no pair to evaluate: `tables` and `pairs` leave no column")
    return tables
