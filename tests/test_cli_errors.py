"""What a user meets when something is wrong: refused outputs, damaged indexes, bad
options, another model, odd inputs. Every case is a message, never a traceback."""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from test_cli import SR, run, tone

from sense.cli import main
from sense.export import WindowSettings, export_model
from sense.lobes.speech import HFSpeechEncoder
from sense.nnet.pooling import AttentivePooling


def _export(folder, encoder_dir, teacher, seed):
    encoder = HFSpeechEncoder(encoder_dir)
    torch.manual_seed(seed)
    export_model(
        folder, encoder, AttentivePooling(encoder.output_dim), teacher=teacher,
        windows=WindowSettings(max_duration=3.0, window=2.0, overlap=0.5),
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_w2v_bert, tiny_xlmr):
    """Two models of the same embedding size (32) that differ in their pooling weights."""
    root = tmp_path_factory.mktemp("models")
    return (
        _export(str(root / "a"), tiny_w2v_bert, tiny_xlmr, 0),
        _export(str(root / "b"), tiny_w2v_bert, tiny_xlmr, 1),
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    sf.write(folder / "a.wav", tone(200, 1.0, 0), SR)
    sf.write(folder / "b.wav", tone(400, 5.0, 1), SR)  # 3 windows of 2 s
    (folder / "notes.txt").write_text("le chat dort\nthe dog barks\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def index(models, clips, tmp_path_factory):
    folder = tmp_path_factory.mktemp("index") / "idx"
    status = main(["index", "-m", models[0], str(clips), str(clips / "notes.txt"),
                   "-o", str(folder), "-q"])  # fmt: skip
    assert status == 0
    return folder


def snapshot(path):
    """Every file under ``path`` (or the file itself) with its bytes."""
    if os.path.isfile(path):
        return {"": open(path, "rb").read()}
    return {
        os.path.relpath(os.path.join(root, n), path): open(os.path.join(root, n), "rb").read()
        for root, _, names in os.walk(path)
        for n in names
    }


# --- item 1: -o never deletes what is not an index -------------------------------------


def test_index_output_refuses_a_folder_of_other_files_and_a_file(models, clips, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    sf.write(victim / "rec.wav", tone(300, 1.0, 3), SR)
    (victim / "notes.txt").write_text("my notes\n")
    text_file = tmp_path / "report.txt"
    text_file.write_text("keep me\n")
    for target in (victim, text_file):
        before = snapshot(target)
        status, _, err = run(capsys, "index", "-m", models[0], victim, "-o", target, "-q")
        assert status == 2, err
        assert f"{target}: " in err and "--force" in err and "Traceback" not in err
        assert snapshot(target) == before  # untouched
    # with --force the user means it
    status, _, err = run(capsys, "index", "-m", models[0], clips, "-o", victim, "-q", "--force")
    assert status == 0, err
    assert sorted(os.listdir(victim)) == [
        "embeddings.npy",
        "entries.jsonl",
        "files.jsonl",
        "index.json",
    ]


def test_index_output_replaces_an_earlier_index_and_fills_an_empty_folder(
    models, clips, index, tmp_path, capsys
):
    again = tmp_path / "again"
    shutil.copytree(index, again)
    assert run(capsys, "index", "-m", models[0], clips / "a.wav", "-o", again, "-q")[0] == 0
    assert json.loads((again / "index.json").read_text())["size"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(capsys, "index", "-m", models[0], clips / "a.wav", "-o", empty, "-q")[0] == 0


# --- item 2: a damaged index is a message naming the file -------------------------------


def _damage_half_npy(folder):
    path = folder / "embeddings.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damage(name, text):
    def damage(folder):
        if text is None:
            (folder / name).unlink()
        else:
            (folder / name).write_text(text, encoding="utf-8")

    return damage


def _damage_one_entry(folder):
    path = folder / "entries.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:-7]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    "damage, file, problem",
    [
        (_damage_half_npy, "embeddings.npy", "not a complete .npy array"),
        (_damage("embeddings.npy", None), "embeddings.npy", "missing"),
        (
            _damage("index.json", '{"format": "sense-index", "model": '),
            "index.json",
            "not readable JSON",
        ),
        (_damage("entries.jsonl", None), "entries.jsonl", "missing"),
        (_damage_one_entry, "entries.jsonl", "line 3 is not JSON"),
    ],
    ids=["npy-cut-in-half", "npy-missing", "info-corrupt", "entries-missing", "entries-bad-line"],
)
def test_a_damaged_index_is_a_clear_error(index, tmp_path, capsys, damage, file, problem):
    damaged = tmp_path / "damaged"
    shutil.copytree(index, damaged)
    damage(damaged)
    status, _, err = run(capsys, "search", damaged, "a query", "-q")
    assert status == 1 and "Traceback" not in err
    assert err.startswith(f"sense: error: {damaged / file}: {problem}"), err
    assert "a damaged index: rebuild it" in err


# --- item 3 and the table: bad invocations are messages --------------------------------


def test_bad_invocations_never_print_a_traceback(models, clips, index, tmp_path, capsys):
    a = models[0]
    cases = [
        (["index", "-m", a, clips, "-o", tmp_path / "x", "--device", "gpu"], 2, "not a device"),
        (["index", "-m", a, clips, "-o", tmp_path / "x", "--device", "cuda:99"], 2, "cuda"),
        (["index", "-m", a, clips, "-o", tmp_path / "x", "--window", "10", "--overlap", "12"],
         2, "--overlap: must be smaller than --window (10), got 12"),
        (["embed", "-m", a, clips, "-o", tmp_path / "x", "--overlap", "5"],
         2, "overlap must lie in [0, window=2.0)"),  # the model's window is 2 s
        (["index", "-m", a, clips, "-o", tmp_path / "x", "--overlap", "-1"], 2, "zero or positive"),
        (["index", "-m", a, clips, "-o", tmp_path / "x", "--max-duration", "-5"], 2, "positive"),
        (["search"], 2, "required: index"),
        (["search", index], 2, "give a text query"),
        (["search", index, "q", "--only", "video"], 2, "invalid choice"),
        (["search", tmp_path / "nothing", "q"], 1, "no such index folder"),
        (["embed", "-m", tmp_path / "nope", clips, "-o", tmp_path / "x"], 1, "no such model"),
        (["embed", "-m", a, tmp_path / "missing.wav", "-o", tmp_path / "x"], 1,
         "nothing to embed"),
        (["frobnicate"], 2, "invalid choice"),
        (["index", "-m", a], 2, "required"),
    ]  # fmt: skip
    for argv, expected, message in cases:
        try:
            status = main([str(x) for x in argv])
        except SystemExit as exit_:  # argparse's own errors
            status = exit_.code
        _, err = capsys.readouterr()
        assert status == expected, (argv, err)
        assert message in err, (argv, err)
        assert "Traceback" not in err, (argv, err)


def test_cuda_without_a_gpu_is_a_usage_error(models, clips, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    status, _, err = run(capsys, "index", "-m", models[0], clips, "-o", tmp_path / "i", "--device",
                         "cuda")  # fmt: skip
    assert status == 2 and "no cuda device on this machine" in err


# --- item 5: another model is refused ------------------------------------------------


def test_search_with_another_model_is_refused_unless_forced(models, index, tmp_path, capsys):
    status, _, err = run(capsys, "search", index, "le chat", "-m", models[1], "-q")
    assert status == 2 and "was built with the model" in err and "--force" in err
    status, out, err = run(capsys, "search", index, "le chat", "-m", models[1], "-q", "--force")
    assert status == 0 and "query text: le chat" in out, err
    # a copy of the right model is the same model (content, not path or mtime)
    copy = shutil.copytree(models[0], tmp_path / "copy")
    status, out, err = run(capsys, "search", index, "le chat", "-m", copy, "-q")
    assert status == 0, err


# --- item 7: window ids, BOM, unsupported formats ------------------------------------


def test_window_ids_are_unique_bom_is_dropped_and_m4a_is_listed(models, clips, tmp_path, capsys):
    folder = tmp_path / "rec"
    shutil.copytree(clips, folder)
    (folder / "phone.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    (folder / "voice.caf").unlink(missing_ok=True)
    sf.write(folder / "voice.caf", tone(250, 0.5, 5), SR, format="CAF")
    status, _, err = run(capsys, "embed", "-m", models[0], folder, "-o", tmp_path / "w.npy",
                         "--windows", "-q")  # fmt: skip
    assert status == 0, err
    ids = [json.loads(line)["id"] for line in open(tmp_path / "w.jsonl", encoding="utf-8")]
    assert len(ids) == len(set(ids)) == 5  # a.wav, b.wav#1..#3, voice.caf
    assert f"{folder / 'b.wav'}#3" in ids and str(folder / "voice.caf") in ids
    assert f"{folder / 'phone.m4a'}: audio format not supported" in err

    text = tmp_path / "bom.txt"
    text.write_bytes("\ufeffle chat dort\n".encode())
    assert run(capsys, "embed", "-m", models[0], text, "-o", tmp_path / "t", "-q")[0] == 0
    (row,) = [json.loads(line) for line in open(tmp_path / "t.jsonl", encoding="utf-8")]
    assert row["text"] == "le chat dort"


# --- item 11: queries in any order, --only, --version, defaults in --help -------------


def test_search_takes_queries_in_any_order_and_only_one_kind(index, clips, capsys):
    status, out, err = run(capsys, "search", index, "--audio", clips / "a.wav", "the dog barks",
                           "-k", "2", "--json", "-q")  # fmt: skip
    assert status == 0, err
    assert [r["query"] for r in json.loads(out)] == [
        {"text": "the dog barks"},
        {"audio": str(clips / "a.wav")},
    ]
    status, out, err = run(capsys, "search", index, "the dog", "--only", "audio", "-k", "9",
                           "--json", "-q")  # fmt: skip
    assert status == 0, err
    (result,) = json.loads(out)
    assert {h["kind"] for h in result["hits"]} == {"audio"} and len(result["hits"]) == 4


def test_version_and_defaults_in_help(capsys):
    import sense

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"sense {sense.__version__}"
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "hits per query (default: 5)" in out and "(default: 8)" in out


# --- item 12: inputs before the model; too-short audio named --------------------------


def test_inputs_are_checked_before_the_model_loads(clips, tmp_path, capsys, monkeypatch):
    import sense.cli.common

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(sense.cli.common, "load_model", no_model)
    status, _, err = run(capsys, "index", "-m", "whatever", tmp_path / "missing.wav", "-o",
                         tmp_path / "i", "-q")  # fmt: skip
    assert status == 1 and "nothing to index" in err and "missing.wav: no such file" in err
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("x")
    status, _, err = run(capsys, "index", "-m", "whatever", clips, "-o", victim, "-q")
    assert status == 2 and "holds other files (keep.txt)" in err


def test_very_short_audio_is_named_with_its_duration(models, clips, tmp_path, capsys):
    short = tmp_path / "click.wav"
    sf.write(short, np.zeros(160, dtype=np.float32), SR)
    status, _, err = run(capsys, "embed", "-m", models[0], short, clips / "a.wav", "-o",
                         tmp_path / "e", "-q")  # fmt: skip
    assert status == 0
    assert f"  {short}: too short (10 ms; at least 35 ms)" in err
