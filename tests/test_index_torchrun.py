"""`sense index` under torchrun: two gloo ranks build the one-process index bit for bit (issue 31)."""

import json
import os
import subprocess
import sys

import pytest
import soundfile as sf
import torch
from helpers.index_rank import LOAD_FAILURE
from helpers.ports import free_port
from test_cli import SR, tone
from test_index_incremental import SENTENCES, export

from sense.cli import main
from sense.distributed import share_by_cost
from sense.index import INDEX_INFO, PARTIAL_SUFFIX
from sense.index_shards import audio_batches, failures_in_batch_order, plan_shares
from sense.inference import SENSE

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
HELPER = os.path.join(REPO, "tests", "helpers", "index_rank.py")
BATCH = 2
#: Seconds of each clip; a5 is not audio (0 s, skipped by the rank that reads it).
DURATIONS = {"a0": 1.0, "a1": 1.2, "a2": 3.5, "a3": 0.8, "a4": 1.5, "a5": 0.0, "a6": 2.0}
BROKEN = "a5"
#: Batches [a0 a1] 2.2 s, [a2 a3] 4.3 s, [a4 a5] 1.5 s, [a6] 2.0 s, longest first:
#: 4.3 -> rank 0; 2.2 -> rank 1 (2.2); 2.0 -> rank 1 (4.2 < 4.3); 1.5 -> rank 1 (5.7).
SHARES = [[1], [0, 2, 3]]
INDEX_FILES = ("embeddings.npy", "entries.jsonl", "files.jsonl")


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_w2v_bert, tiny_xlmr):
    return export(str(tmp_path_factory.mktemp("torchrun-model") / "m"), tiny_w2v_bert, tiny_xlmr, 0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Seven clips (a2 cut into windows, a5 not audio) and a text file."""
    root = tmp_path_factory.mktemp("torchrun-corpus")
    clips = root / "clips"
    clips.mkdir()
    for i, (name, seconds) in enumerate(DURATIONS.items()):
        if name == BROKEN:
            (clips / f"{name}.wav").write_bytes(b"RIFF, but no audio after all")
        else:
            sf.write(clips / f"{name}.wav", tone(150 + 90 * i, seconds, i), SR)
    (root / "sentences.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def one_thread():
    """Torch on one thread, as each torchrun rank: the same kernels, the same sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def argv(model, corpus, output, *options) -> list[str]:
    inputs = [corpus / "clips", corpus / "sentences.txt"]
    common = ["-o", output, "--device", "cpu", "--batch-size", BATCH, *options]
    return [str(a) for a in ["index", "-m", model, *inputs, *common]]


@pytest.fixture(scope="module")
def reference(model, corpus):
    """The index of one process, without torchrun, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(argv(model, corpus, corpus / "reference.index", "-q")) == 0
    finally:
        torch.set_num_threads(threads)
    return corpus / "reference.index"


def torchrun(*args) -> subprocess.CompletedProcess:
    """Two gloo ranks of ``args`` (``-m sense.cli ...`` or a script), one thread each."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([REPO, env.get("PYTHONPATH", "")])
    env.pop("PYTEST_XDIST_WORKER", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    command.append(f"--master_port={free_port()}")
    return subprocess.run(
        [*command, *map(str, args)], env=env, capture_output=True, text=True, timeout=300
    )


def assert_same_index(folder, reference):
    for name in INDEX_FILES:
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name
    info, expected = (json.loads((f / INDEX_INFO).read_text()) for f in (folder, reference))
    assert info.pop("created") and expected.pop("created")
    assert info == expected


# --- sharing the work -------------------------------------------------------------------


def test_whole_batches_are_shared_longest_first_by_seconds_of_audio():
    names = list(DURATIONS)
    batches = list(enumerate(audio_batches(names, BATCH)))
    assert batches == [(0, ["a0", "a1"]), (1, ["a2", "a3"]), (2, ["a4", "a5"]), (3, ["a6"])]
    shares = plan_shares(batches, {"s.txt": 2, "t.txt": 5}, DURATIONS.get, 2)
    assert [[i for i, _ in share.audio] for share in shares] == SHARES
    assert [share.text for share in shares] == [["t.txt"], ["s.txt"]]
    assert plan_shares(batches, {}, None, 1)[0].audio == batches  # one process: all, no durations
    # ties: the earlier item first, to the lower rank
    assert share_by_cost([2, 2, 2, 1], 3) == [[0, 3], [1], [2]]


def test_the_files_each_rank_skipped_are_listed_in_batch_order():
    by_rank = [{1: [], 3: [("d", "bad")]}, {0: [("a", "empty")], 2: [("c", "short")]}]
    assert failures_in_batch_order(by_rank) == [("a", "empty"), ("c", "short"), ("d", "bad")]


# --- two processes ----------------------------------------------------------------------


@pytest.mark.slow
def test_two_ranks_build_the_one_process_index_bit_for_bit(model, corpus, reference, tmp_path):
    output = tmp_path / "two.index"
    proc = torchrun("-m", "sense.cli", *argv(model, corpus, output))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_same_index(output, reference)
    assert not os.path.exists(f"{output}{PARTIAL_SUFFIX}")
    # rank 0 alone reports: the summary once, the file rank 1 could not read once
    err = proc.stderr
    assert err.count("indexed 9 entries (6 recording(s), 2 sentence(s))") == 1, err
    assert err.count("loading model") == 1 and err.count("embedding 7 audio file(s)") == 1
    assert err.count("skipped 1 input(s):") == 1 and err.count(f"{BROKEN}.wav: unreadable") == 1
    assert "rank 0's share of 2" in err and proc.stdout == ""


@pytest.mark.slow
def test_a_rank_killed_mid_way_keeps_its_batches_and_a_rerun_resumes(
    model, corpus, reference, tmp_path, one_thread, monkeypatch, capsys
):
    output, report = tmp_path / "killed.index", tmp_path / "report"
    # rank 1 (batches 0, 2 and 3) dies once batch 0 is recorded
    proc = torchrun(HELPER, report, 1, "kill-after-1", *argv(model, corpus, output, "-q"))
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert (report / "rank1.txt").read_text() == "a0.wav a1.wav\n"
    assert not output.exists() and os.path.isdir(f"{output}{PARTIAL_SUFFIX}")

    embedded = []
    encode = SENSE.encode_files

    def noted_encode(self, paths, **kwargs):
        embedded.extend(os.path.basename(p) for p in paths)
        return encode(self, paths, **kwargs)

    monkeypatch.setattr(SENSE, "encode_files", noted_encode)
    assert main(argv(model, corpus, output)) == 0  # one process, no torchrun
    err = capsys.readouterr().err
    assert "resuming:" in err
    assert not {"a0.wav", "a1.wav"} & set(embedded)  # rank 1's finished batch is kept
    assert {"a4.wav", "a5.wav", "a6.wav"} <= set(embedded)  # its others are not lost
    assert_same_index(output, reference)
    assert not os.path.exists(f"{output}{PARTIAL_SUFFIX}")


@pytest.mark.slow
def test_a_model_that_fails_to_load_on_one_rank_stops_all_and_rank_0_says_why(
    model, corpus, tmp_path
):
    output = tmp_path / "failed.index"
    proc = torchrun(HELPER, tmp_path / "report", 1, "fail-load", *argv(model, corpus, output))
    assert proc.returncode != 0
    assert proc.stderr.count(f"sense: error: {LOAD_FAILURE}\n") == 1, proc.stderr[-3000:]
    assert not output.exists() and not os.path.exists(f"{output}{PARTIAL_SUFFIX}")
