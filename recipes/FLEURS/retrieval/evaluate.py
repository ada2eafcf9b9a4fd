#!/usr/bin/env python3
"""FLEURS X speech -> EN text and X speech -> Y text retrieval (SENSE paper, Tables III-IV).

Prepares the query and search manifests from the release, embeds them with
every model of ``models`` (cached on disk) and writes the results table
(``<output_folder>/retrieval.{md,csv,json}``, plus ``metrics.json`` with
R@1/5/10 and MRR)::

    python evaluate.py hparams/evaluate.yaml --data_folder=/data/fleurs \
        --models="[/models/sense, {type: sense, source: /models/samu, name: SAMU-XLSR}]"

See README.md for the release layout and the paper's numbers.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fleurs_prepare import prepare_fleurs  # noqa: E402

from sense.evaluation import run_as_script, run_recipe  # noqa: E402


def prepare(hparams):
    """The pair folders, prepared from the release as the hparams say."""
    return prepare_fleurs(
        data_folder=hparams["data_folder"],
        save_folder=hparams["save_folder"],
        pairs=hparams["pairs"],
        splits=hparams["splits"],
        recordings=hparams["recordings"],
        text_column=hparams["text_column"],
        lang_dirs=hparams["lang_dirs"],
        skip_prep=hparams["skip_prep"],
    )


def main(argv=None):
    return run_recipe(sys.argv[1:] if argv is None else argv, prepare)


if __name__ == "__main__":
    run_as_script(main)
