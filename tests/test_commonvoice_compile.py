"""recipes/CommonVoice/SENSE with compiled encoder layers, on the tiny Common Voice release."""

import os
import re

import pytest
from cv_fixture import checkpoints, run_recipe
from cv_fixture import recipe_args as _args

pytestmark = pytest.mark.slow


def test_the_recipe_trains_with_compiled_layers(cv_release, tiny_w2v_bert, tiny_xlmr, tmp_path):
    """``--compile_layers=True`` (with checkpointing off, which it refuses) trains and saves."""
    cv, _ = cv_release
    out = str(tmp_path / "run")
    args = _args(cv, out, tiny_w2v_bert, tiny_xlmr, "--number_of_epochs=2")
    refused = run_recipe([*args, "--compile_layers=True"])
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "compile_layers and gradient_checkpointing cannot be combined" in said
    result = run_recipe([*args, "--compile_layers=True", "--gradient_checkpointing=False"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(os.path.join(out, "train_log.txt"), encoding="utf-8") as f:
        log = f.read()
    train = [float(x) for x in re.findall(r"train loss: ([0-9.e+-]+)", log)]
    assert len(train) == 2 and train[1] < train[0]
    assert len(checkpoints(out)) >= 1
