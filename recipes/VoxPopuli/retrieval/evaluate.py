#!/usr/bin/env python3
"""VoxPopuli speech -> speech translation retrieval (SENSE paper, Table I).

Prepares the query and search manifests from the release, embeds them with
every model of ``models`` (cached on disk) and writes the results table
(``<output_folder>/retrieval.{md,csv,json}``, plus ``metrics.json`` with
R@1/5/10 and MRR)::

    python evaluate.py hparams/evaluate.yaml --data_folder=/data/voxpopuli \
        --models="[/models/sense, {type: sense, source: /models/samu, name: SAMU-XLSR}]"

See README.md for the release layout and the paper's numbers.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from voxpopuli_prepare import prepare_voxpopuli  # noqa: E402

from sense.evaluation import run_as_script, run_recipe  # noqa: E402


def prepare(hparams):
    """The pair folders, prepared from the release as the hparams say."""
    return prepare_voxpopuli(
        data_folder=hparams["data_folder"],
        save_folder=hparams["save_folder"],
        pairs=hparams["pairs"],
        xy_mode=hparams["xy_mode"],
        manifest=hparams["manifest"],
        skip_prep=hparams["skip_prep"],
    )


def main(argv=None):
    return run_recipe(sys.argv[1:] if argv is None else argv, prepare)


if __name__ == "__main__":
    run_as_script(main)
