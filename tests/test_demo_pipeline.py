"""The `make demo` pipeline, reduced (few sentences, one epoch, a tinier student)."""

import json
import os

import pytest
import torch

from sense.demo.run import DemoConfig, run

pytestmark = pytest.mark.slow


def test_quick_demo_runs_end_to_end(tmp_path):
    cfg = DemoConfig.quick(str(tmp_path / "demo"))
    summary = run(cfg)
    # the before/after results cover every language and pair
    for kind, expected in (
        ("speech-text", len(cfg.languages)),
        ("speech-speech", len(cfg.languages) * (len(cfg.languages) - 1)),
    ):
        assert set(summary["results"][kind]) == {"random student", "trained SENSE"}
        for per_pair in summary["results"][kind].values():
            assert len(per_pair) == expected
            for metrics in per_pair.values():
                assert 0.0 <= metrics["R@1"] <= 1.0
                assert metrics["n_query"] == cfg.heldout
    assert summary["chance_R@1"] == pytest.approx(1 / cfg.heldout)
    # examples: held-out meanings, spoken in every language, with what was retrieved
    assert len(summary["examples"]) == 2
    for example in summary["examples"]:
        assert [q["lang"] for q in example["queries"]] == list(cfg.languages)
        en_query = example["queries"][cfg.languages.index("en")]
        assert en_query["speech"] == example["en"]
        assert all(isinstance(q["correct"], bool) and q["retrieved"] for q in example["queries"])
    # the training really ran through the recipe and was exported
    assert os.path.isfile(os.path.join(cfg.output, "train", "model", "hyperparams.yaml"))
    with open(os.path.join(cfg.output, "train", "train_log.txt"), encoding="utf-8") as f:
        assert "valid loss" in f.read()
    # the exported head carries the batch statistics that let a random student learn
    head = torch.load(os.path.join(cfg.output, "train", "model", "pooling.ckpt"))
    assert head["norm.num_batches_tracked"] > 0 and head["norm.running_mean"].abs().sum() > 0
    # the pictures exist and are PNG files
    for path in summary["figures"].values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # the attention analysis of section VII, with espeak-ng's word boundaries
    with open(summary["attention_report"], encoding="utf-8") as f:
        report = f.read()
    assert "Table IX (fr)" in report and "uniform mean pooling" in report
    with open(os.path.join(cfg.output, "summary.json"), encoding="utf-8") as f:
        assert json.load(f)["times_chance"] == pytest.approx(summary["times_chance"])
    assert summary["release_written"] is True
    # a second run reuses the release and the finished training
    again = run(cfg)
    assert again["release_written"] is False
    assert again["results"]["speech-text"] == summary["results"]["speech-text"]
