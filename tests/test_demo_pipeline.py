"""The `make demo` pipeline, reduced (few sentences, one epoch, a tinier student)."""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch

from sense.cli import main as sense_main
from sense.demo.run import DemoConfig, build_student, run, synthesize, train

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def readme_examples() -> tuple[list[str], list[str]]:
    """The Python blocks and the ``$ sense ...`` commands of the README's "Using a trained model"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Using a trained model", 1)[1].split("\n## ", 1)[0]
    python = re.findall(r"```python\n(.*?)```", section, re.S)
    commands = [
        line[2:]
        for block in re.findall(r"```console\n(.*?)```", section, re.S)
        for line in block.splitlines()
        if line.startswith("$ sense ")
    ]
    return python, commands


def run_readme_examples(folder: Path, capsys) -> None:
    """Run the README's examples as written, in the folder that holds ``demo_output``."""
    python, commands = readme_examples()
    assert python and len(commands) >= 4
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for block in python:
            exec(compile(block, "README.md", "exec"), {})
        for command in commands:
            if command.startswith("sense serve "):
                serve_briefly(command)
                continue
            status = sense_main(shlex.split(command)[1:])
            out = capsys.readouterr()
            assert status == 0, f"{command}: exit {status}\n{out.err}"
    finally:
        os.chdir(cwd)


def serve_briefly(command: str) -> None:
    """``sense serve`` as written (on a free port: ``--port 0``) until it answers one search."""
    argv = [sys.executable, "-m", "sense.cli", *shlex.split(command)[1:], "--port", "0"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    errors = tempfile.TemporaryFile("w+", encoding="utf-8")  # read if it fails
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
    try:
        match = None
        for line in server.stdout:  # "serving demo.index (16 entries) on http://127.0.0.1:PORT/"
            match = re.match(r"^serving .* on (http://\S+/)$", line.strip())
            if match:
                break
        if not match:
            errors.seek(0)
            pytest.fail(f"{command} exited with {server.wait()}: {errors.read()[-2000:]}")
        query = urllib.parse.urlencode({"q": "Who sells a green book?", "k": 3})
        with urllib.request.urlopen(f"{match.group(1)}api/search?{query}", timeout=120) as reply:
            hits = json.load(reply)["hits"]
        assert [hit["rank"] for hit in hits] == [1, 2, 3]
    finally:
        server.terminate()
        server.wait(timeout=30)
        errors.close()


def _cached_ranking_metrics(output: str, pair: str) -> dict[str, float]:
    """R@1, R@5 and MRR of the trained model on a demo pair, from its cached embeddings.

    Each side centred on its own mean and L2-normalised, cosine ranking in float64, a
    query's rank one plus the entries scoring higher than its target (or as high and
    listed first).
    """
    from sense.evaluation import EmbeddingCache, SENSEEncoder, embed_manifest, load_pair

    cache = EmbeddingCache(os.path.join(output, "eval", "embeddings"))
    encoder = SENSEEncoder(os.path.join(output, "train", "model"), name="trained SENSE")
    query, search, targets = load_pair(os.path.join(output, "eval", "pairs", pair))
    q, s = (embed_manifest(encoder, m, cache).double() for m in (query, search))
    q, s = (torch.nn.functional.normalize(x - x.mean(0), dim=-1) for x in (q, s))
    scores = q @ s.T
    target = scores.gather(1, targets[:, None])
    before = torch.arange(len(search))[None] < targets[:, None]
    ranks = 1 + ((scores > target) | ((scores == target) & before)).sum(dim=1).double()
    return {
        "R@1": (ranks <= 1).double().mean().item(),
        "R@5": (ranks <= 5).double().mean().item(),
        "MRR": (1 / ranks).mean().item(),
    }


def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    cfg = DemoConfig.quick(str(tmp_path / "demo_output"))
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
                assert metrics["n_query"] == cfg.heldout
    # the trained model's speech -> EN text scores: a float64 brute-force ranking of the
    # embeddings the evaluation cached
    for pair, metrics in summary["results"]["speech-text"]["trained SENSE"].items():
        expected = _cached_ranking_metrics(cfg.output, f"{pair}-text")
        assert {k: metrics[k] for k in expected} == pytest.approx(expected), pair
    assert summary["chance_R@1"] == pytest.approx(1 / cfg.heldout)
    # examples: held-out meanings, spoken in every language, with what was retrieved
    assert len(summary["examples"]) == 2
    for example in summary["examples"]:
        assert [q["lang"] for q in example["queries"]] == list(cfg.languages)
        en_query = example["queries"][cfg.languages.index("en")]
        assert en_query["speech"] == example["en"]
        # right exactly when the EN sentence of the meaning was retrieved
        assert [q["correct"] for q in example["queries"]] == [
            q["retrieved"] == example["en"] for q in example["queries"]
        ]
    # the training really ran through the recipe and was exported
    assert os.path.isfile(os.path.join(cfg.output, "train", "model", "hyperparams.yaml"))
    with open(os.path.join(cfg.output, "train", "train_log.txt"), encoding="utf-8") as f:
        assert "valid loss" in f.read()
    # the exported head carries the batch statistics that let a random student learn
    head = torch.load(os.path.join(cfg.output, "train", "model", "pooling.ckpt"))
    # one training batch a step: the steps Adam counted for the head's weights
    (ckpt,) = Path(cfg.output, "train", "save").glob("CKPT+*")
    state = torch.load(ckpt / "pooling_optimizer.ckpt")["state"]
    steps = {int(s["step"]) for s in state.values()}
    assert len(steps) == 1 and head["norm.num_batches_tracked"] == steps.pop() > 0
    assert head["norm.running_mean"].abs().sum() > 0
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
    # the README's examples run as written on what the demo leaves
    run_readme_examples(tmp_path, capsys)
    # a second run reuses the release and the finished training
    log = os.path.join(cfg.output, "train", "train_log.txt")
    with open(log, encoding="utf-8") as f:
        trained_log = f.read()
    assert synthesize(cfg)["written"] is False
    train(cfg, build_student(cfg))
    with open(log, encoding="utf-8") as f:
        assert f.read().count("valid loss") == trained_log.count("valid loss")
