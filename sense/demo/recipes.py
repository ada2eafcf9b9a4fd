"""Where the demos find the recipes they run: the recipes of a sense checkout.

The demos drive the recipes the way a user does (``train.py`` and its YAML),
and recipes are not part of the installed package: an installed ``sense``
imports and runs everything else, and its demos say where the recipes are
expected instead of failing later with a missing file.

Example
-------
>>> os.path.basename(recipe_folder("CommonVoice", "SENSE"))
'SENSE'

and run one as a user does (``python train.py hparams/x.yaml --key=value``)::

    run_recipe(recipe_folder("DemoCorpus", "SLU"), ["hparams/train.yaml", "--device=cpu"])
"""

from __future__ import annotations

import os
import subprocess
import sys

#: The checkout this package sits in (when it is one).
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class RecipesNotFoundError(FileNotFoundError):
    """The demos run from an installed package, without the checkout's recipes."""


def recipe_folder(*parts: str) -> str:
    """``<checkout>/recipes/<parts>``, or a clear error when this ``sense`` has no checkout.

    Raises
    ------
    RecipesNotFoundError
        Naming the folder and what to do.
    """
    folder = os.path.join(REPO, "recipes", *parts)
    if not os.path.isdir(folder):
        raise RecipesNotFoundError(
            f"{folder}: not found. The demos run the recipes of a sense checkout, which an "
            "installed package does not include: clone the repository and run `make demo` there"
        )
    return folder


def run_recipe(folder: str, argv: list[str], script: str = "train.py") -> None:
    """``python <script> <argv>`` in the recipe ``folder``, this ``sense`` on the path.

    Raises
    ------
    subprocess.CalledProcessError
        The recipe failed (its own messages are on stderr).
    """
    path = os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    subprocess.run([sys.executable, script, *argv], cwd=folder, env=env, check=True)
