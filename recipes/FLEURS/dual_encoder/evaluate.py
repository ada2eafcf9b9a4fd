#!/usr/bin/env python3
"""FLEURS speech -> transcript and speech -> EN text retrieval of speech-text encoders (seed 003).

The paper's Table 1 (speech -> transcript R@1 and the WER of the retrieved
transcript, per language), Table 2 (R@1 by language group) and Figure 3
(zero-shot speech -> EN text R@1 and the BLEU of the retrieved English), for
any mix of LLM dual encoders and SENSE models side by side. Pairs are prepared
by our FLEURS preparation (``../retrieval/fleurs_prepare.py``): ``fr-fr`` is
French speech against the French transcripts, ``fr-en`` against English::

    python evaluate.py hparams/evaluate.yaml --data_folder=/data/fleurs --models="[
        {type: 'sense.dual_encoder.evaluation:DualEncoderBenchmark', source: /models/de, name: LLM-DE},
        {type: sense, source: /models/sense, name: SENSE}]"

Writes, in ``output_folder``: ``transcripts.{md,csv,json}`` and
``x_en.{md,csv,json}`` (R@1), ``groups.{md,csv,json}`` (Table 2),
``metrics.json`` (R@1/5/10, MRR) and ``text_metrics.json`` (WER, BLEU).
"""

import importlib.util
import os
import sys

from sense.dual_encoder.metrics import group_means, retrieved_text_metrics
from sense.evaluation import EmbeddingCache, build_encoders, run_as_script, run_recipe
from sense.evaluation.recipe import load_experiment
from sense.io import write_json_atomic
from sense.results import RetrievalTable

RETRIEVAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "retrieval")


def _fleurs_retrieval():
    """The FLEURS retrieval recipe's ``evaluate.py`` (its ``prepare``), imported by path."""
    sys.path.insert(0, RETRIEVAL)
    spec = importlib.util.spec_from_file_location(
        "fleurs_retrieval", os.path.join(RETRIEVAL, "evaluate.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    results = run_recipe(argv, _fleurs_retrieval().prepare)
    hparams, run_opts = load_experiment(argv)
    out = hparams["output_folder"]
    device = run_opts.get("device") or "cpu"
    encoders = build_encoders(hparams["models"], device=device)
    cache = EmbeddingCache(hparams["cache_folder"])
    text_metrics = {}
    for encoder in encoders:
        for pair in results.get(encoder.name, {}):
            folder = os.path.join(hparams["save_folder"], pair)
            text_metrics.setdefault(encoder.name, {})[pair] = retrieved_text_metrics(
                encoder, folder, cache, hparams["mean_subtract"], hparams["batch_size"]
            )
    write_json_atomic(os.path.join(out, "text_metrics.json"), text_metrics, indent=1)
    groups = hparams.get("language_groups") or {}
    table = RetrievalTable(title="Speech -> transcript R@1 by language group (FLEURS)")
    for model, per_pair in results.items():
        own = {p.split("-")[0]: m for p, m in per_pair.items() if len(set(p.split("-"))) == 1}
        for group, value in group_means(own, groups).items():
            table.add(model, group, value)
    if table.models:
        table.save(os.path.join(out, "groups"))
    return {"retrieval": results, "text": text_metrics}


if __name__ == "__main__":
    run_as_script(main)
