"""The benchmark code runs at the tiniest size and writes what it promises.

No timing is asserted anywhere: speed is measured by ``python -m benchmarks``,
never tested against a limit.
"""

import json
import math

import pytest
from transformers import Wav2Vec2BertConfig

from benchmarks import flops
from benchmarks.__main__ import main
from benchmarks.models import SIZES, student_config, synthetic_batch


def _positive(x) -> bool:
    """For sizes and counts (never for a number derived from a timing)."""
    return isinstance(x, (int, float)) and x > 0


def _measured(x) -> bool:
    """A number derived from a timing: reported, finite, never compared with a limit.

    Rounded rates such as model TFLOP/s can be 0.0 on a loaded machine.
    """
    return isinstance(x, (int, float)) and math.isfinite(x) and x >= 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    results = main(
        [
            "--only",  # start-up runs fresh processes: its own test below measures two
            "train,frontend,inference,retrieval,teacher,decode",
            "--sizes",
            "tiny",
            "--device",
            "cpu",
            "--rounds",
            "1",
            "--utterances",
            "2",
            "--min-seconds",
            "1",
            "--max-seconds",
            "2",
            "--inference-files",
            "2",
            "--retrieval-queries",
            "20",
            "--retrieval-database",
            "500",
            "--decode-utterances",
            "2",
            "--output",
            str(out),
        ]
    )
    return results, out


def test_writes_json_and_markdown(tiny_run):
    results, out = tiny_run
    assert results["errors"] == []
    on_disk = json.loads(out.read_text())
    assert set(on_disk) >= {
        "machine",
        "settings",
        "train_step",
        "frontend",
        "inference",
        "retrieval",
        "elapsed_s",
    }
    markdown = out.with_suffix(".md").read_text()
    for title in (
        "## Training step",
        "## Front-end",
        "## Inference",
        "## Retrieval",
        "## Speech translation decoding",
    ):
        assert title in markdown


def test_training_step_result(tiny_run):
    (r,) = tiny_run[0]["train_step"]
    assert r["size"] == "tiny" and r["precision"] == "fp32"
    for name in ("ours", "theirs"):
        s = r[name]
        assert _measured(s["step_median_s"]) and _measured(s["audio_seconds_per_second"])
        assert _positive(s["state_mb"]) and _measured(s["model_tflops_per_s"])
        assert s["mfu"] is None  # no peak on a CPU
    assert _measured(r["speedup"]) and _positive(r["model_gflops_per_step"])
    assert set(r["components_median_s"]) == {
        "their_frontend",
        "our_frontend",
        "their_teacher",
        "our_teacher_lookup",
    }
    assert all(_measured(v) for v in r["components_median_s"].values())
    assert r["student"]["hidden_size"] == 32 and r["student"]["depthwise_kernel"] == 31


def test_frontend_result(tiny_run):
    r = tiny_run[0]["frontend"]
    assert _measured(r["hf_extractor_s"]) and _measured(r["ours_cpu_s"])
    assert r["parity"]["cpu"]["frame_counts_equal"] is True
    assert r["parity"]["cpu"]["max_abs_error"] < 1e-2


def test_inference_result(tiny_run):
    (r,) = tiny_run[0]["inference"]
    assert r["files"] == 2 and r["embedding_dim"] == 32
    for key in ("batch_1", "batch_8"):
        assert _measured(r[key]["rtf"]) and _measured(r[key]["audio_seconds_per_second"])


def test_retrieval_result(tiny_run):
    r = tiny_run[0]["retrieval"]
    assert r["queries"] == 20 and r["database"] == [500, 1024]
    assert _measured(r["search_queries_per_second"])
    assert _measured(r["brute_force_queries_per_second"])
    assert r["top1_agreement"] == 1.0
    assert r["r_at_1_search"] == r["r_at_1_brute_force"]


def test_decoding_result(tiny_run):
    (r,) = tiny_run[0]["decoding"]
    assert r["beam_size"] == 5 and r["utterances"] == 2
    # fixed-length decoding: ours runs one step more (the forced language token, which
    # starts theirs), theirs ends on the end token it leaves out of the hypothesis
    steps = r["output_tokens"]
    assert r["output_lengths"] == {"sense": steps + 2, "speechbrain": steps - 1}
    for name in ("sense", "speechbrain"):
        assert _measured(r[name]["utterances_per_second"])
    assert _measured(r["speedup"])


def test_real_size_is_refused_on_cpu(tmp_path):
    results = main(
        [
            "--only",
            "train",
            "--sizes",
            "real",
            "--device",
            "cpu",
            "--output",
            str(tmp_path / "b.json"),
        ]
    )
    assert results["train_step"] == [
        {"size": "real", "error": "the real sizes are run only on a GPU"}
    ]


def test_real_config_is_w2v_bert_2():
    config = student_config(SIZES["real"])
    assert (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.intermediate_size,
        config.conv_depthwise_kernel_size,
    ) == (1024, 24, 16, 4096, 31)
    assert SIZES["real"].teacher["vocab_size"] == 250002


def test_flops_derivation():
    config = Wav2Vec2BertConfig()
    d, f, k, layers, t = 1024, 4096, 31, 24, 250
    per_frame = layers * (8 * d * f + 14 * d * d + 6 * t * d + 2 * k * d) + 320 * d + 4 * d
    assert flops.w2v_bert_forward_flops_per_frame(config, t) == per_frame
    assert flops.w2v_bert_train_flops(config, [t, t]) == 3 * 2 * t * per_frame
    assert flops.w2v_bert_train_flops_per_audio_second(config, 5.0) == 3 * 50 * per_frame
    assert flops.mfu(1e12, 1.0, None) is None


def test_synthetic_batch_matches_token_rate():
    batch = synthetic_batch(2, 1.0, 2.0)
    batch.fit_transcripts(lambda text: len(text.split()), tokens_per_second=3.0)
    assert [len(t.split()) for t in batch.transcripts] == [3, 6]


def test_startup_runs_each_command_in_a_fresh_process():
    from benchmarks import report, startup

    only = ("sense --help", "usage error: sense search INDEX (no query)")
    r = startup.run(rounds=1, only=only)
    assert [row["command"] for row in r["rows"]] == [startup.BASELINE, *only]
    assert [row["exit_status"] for row in r["rows"]] == [0, 0, 2]
    assert all(_measured(row["median_s"]) for row in r["rows"])
    assert r["rows"][0]["ratio_to_import_torch"] == 1.0
    assert "| sense --help |" in "\n".join(report._startup(r))
