"""The summarizer learns from sentence embeddings: held-out ROUGE-L far above the lead baseline."""

import json

import pytest

from sense.summarization.demo import main


@pytest.mark.slow
def test_stage1_learns_the_subjects_of_held_out_documents(tmp_path):
    out = tmp_path / "demo"
    stats = main(
        [
            "--output",
            str(out),
            "--train-documents",
            "160",
            "--test-documents",
            "30",
            "--epochs",
            "8",
            "--hidden",
            "32",
            "--layers",
            "1",
            "--batch-size",
            "8",
            "--lr",
            "0.003",
        ]
    )["stage1"]
    baseline = stats["first-sentence ROUGE-L"]
    assert 20.0 < baseline < 40.0  # the first sentence shares one subject with the summary
    assert stats["ROUGE-L"] > baseline + 15.0
    table = json.loads((out / "demo_table.json").read_text(encoding="utf-8"))
    assert len(table["rows"]) == 2
