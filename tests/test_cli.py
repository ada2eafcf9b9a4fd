"""The `sense` command: embed, index, search, failures, and a fast --help."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from sense.cli import main
from sense.export import WindowSettings, export_model
from sense.lobes.speech import HFSpeechEncoder
from sense.nnet.pooling import AttentivePooling

SR = 16000
SENTENCES = [
    "the cat sleeps on the red sofa",
    "",  # blank lines are skipped
    "le chat dort sur le canapé rouge",
    "die Katze schläft auf dem roten Sofa",
    "молодой врач читает длинное письмо в саду",
]


def tone(f0: float, duration: float, seed: int) -> np.ndarray:
    """A distinct synthetic sound: harmonics of ``f0`` with a little noise."""
    t = np.arange(int(duration * SR)) / SR
    rng = np.random.default_rng(seed)
    sig = sum(a * np.sin(2 * np.pi * f0 * h * t) for a, h in [(0.3, 1), (0.15, 2), (0.08, 3)])
    return (sig + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_w2v_bert, tiny_xlmr):
    folder = str(tmp_path_factory.mktemp("cli-model") / "model")
    encoder = HFSpeechEncoder(tiny_w2v_bert)
    torch.manual_seed(0)
    pooling = AttentivePooling(encoder.output_dim)
    with torch.no_grad():
        pooling.attention.weight.mul_(5.0)
    export_model(
        folder,
        encoder,
        pooling,
        teacher=tiny_xlmr,
        windows=WindowSettings(max_duration=3.0, window=2.0, overlap=0.5),
    )
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    clips = root / "clips"
    (clips / "sub").mkdir(parents=True)
    for i, f0 in enumerate([150, 230, 340, 520]):
        sf.write(clips / f"clip{i}.wav", tone(f0, 1.0 + 0.2 * i, i), SR)
    # a long recording in a sub-folder, as 44.1 kHz stereo flac: cut into windows
    long = np.concatenate([tone(f0, 1.0, 10 + i) for i, f0 in enumerate([180, 260, 390, 610, 800])])
    sf.write(clips / "sub" / "talk.flac", np.stack([long, long], axis=1), SR)
    text = root / "sentences.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return root


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, sense.cli\n"
        "try:\n    sense.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'numpy', 'speechbrain', 'transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "embed" in result.stdout and "index" in result.stdout and "search" in result.stdout
    assert "HEAVY []" in result.stdout


def test_index_then_search_finds_the_known_answer(model_dir, corpus, tmp_path, capsys):
    index = tmp_path / "my.index"
    status, _, err = run(
        capsys, "index", "-m", model_dir, corpus / "clips", corpus / "sentences.txt",
        "-o", index, "--device", "cpu", "--batch-size", "3", "--quiet",
    )  # fmt: skip
    assert status == 0, err
    assert sorted(os.listdir(index)) == [
        "embeddings.npy",
        "entries.jsonl",
        "files.jsonl",
        "index.json",
    ]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]
    with open(index / "entries.jsonl", encoding="utf-8") as f:
        entries = [json.loads(line) for line in f]
    embeddings = np.load(index / "embeddings.npy")
    assert embeddings.shape[0] == len(entries)
    # 4 short clips (one window each), the long talk in 3 windows, 4 sentences
    talk = [e for e in entries if e["path"].endswith("talk.flac")]
    assert [(e["start"], e["end"]) for e in talk] == [(0.0, 2.0), (1.5, 3.5), (3.0, 5.0)]
    assert sum(e["kind"] == "text" for e in entries) == 4
    assert [e["line"] for e in entries if e["kind"] == "text"] == [1, 3, 4, 5]

    # an audio query that is one of the indexed clips finds itself first
    query_clip = os.path.normpath(str(corpus / "clips" / "clip2.wav"))
    status, out, err = run(
        capsys, "search", index, "--audio", query_clip, "--top-k", "3", "--json", "--quiet"
    )
    assert status == 0, err
    (result,) = json.loads(out)
    top = result["hits"][0]
    assert top["id"] == query_clip and top["score"] == pytest.approx(1.0, abs=1e-4)
    assert len(result["hits"]) == 3

    # a text query that is one of the indexed sentences finds itself first, and the
    # plain-text output shows ranks, scores, ids and time spans of windows
    status, out, err = run(
        capsys, "search", index, SENTENCES[2], "--audio", corpus / "clips" / "sub" / "talk.flac",
        "-k", "9", "--quiet",
    )  # fmt: skip
    assert status == 0, err
    blocks = out.strip().split("\n\n")
    text_block, audio_block = blocks
    assert text_block.splitlines()[0] == f"query text: {SENTENCES[2]}"
    first = text_block.splitlines()[1].split()
    assert first[0] == "1" and float(first[1]) == pytest.approx(1.0, abs=1e-4)
    assert first[2] == f"{corpus / 'sentences.txt'}:3"
    assert any("talk.flac#2  [0:01.50-0:03.50]" in line for line in audio_block.splitlines())


def test_faiss_and_torch_give_the_same_results(model_dir, corpus, tmp_path, capsys):
    pytest.importorskip("faiss")
    index = tmp_path / "idx"
    assert run(capsys, "index", "-m", model_dir, corpus / "clips", "-o", index, "-q")[0] == 0
    results = {}
    for backend in ("faiss", "torch"):
        status, out, err = run(
            capsys, "search", index, "a query", "--audio", corpus / "clips" / "clip0.wav",
            "-k", "7", "--json", "-q", "--backend", backend,
        )  # fmt: skip
        assert status == 0, err
        results[backend] = json.loads(out)
    for a, b in zip(results["faiss"], results["torch"]):
        assert [h["id"] for h in a["hits"]] == [h["id"] for h in b["hits"]]
        assert [h.get("start") for h in a["hits"]] == [h.get("start") for h in b["hits"]]
        np.testing.assert_allclose(
            [h["score"] for h in a["hits"]], [h["score"] for h in b["hits"]], atol=1e-5
        )


def test_embed_audio_and_text(model_dir, corpus, tmp_path, capsys):
    from sense.inference import SENSE

    out = tmp_path / "out" / "clips.npy"
    status, _, err = run(capsys, "embed", "-m", model_dir, corpus / "clips", "-o", out, "-q")
    assert status == 0, err
    embeddings = np.load(out)
    with open(tmp_path / "out" / "clips.jsonl", encoding="utf-8") as f:
        ids = [json.loads(line)["id"] for line in f]
    assert embeddings.shape == (5, 32) and len(ids) == 5  # one vector per file, long one pooled
    model = SENSE.from_hparams(source=model_dir, device="cpu")
    expected = model.encode_file(ids[2]).numpy()
    np.testing.assert_allclose(embeddings[2], expected, atol=1e-5)

    status, _, err = run(
        capsys, "embed", "-m", model_dir, corpus / "clips" / "sub", "-o", tmp_path / "w.npy",
        "--windows", "-q",
    )  # fmt: skip
    assert status == 0, err
    assert np.load(tmp_path / "w.npy").shape == (3, 32)

    text = tmp_path / "sentences.list"  # any name, with --text
    text.write_text("\n".join(SENTENCES), encoding="utf-8")
    status, _, err = run(
        capsys, "embed", "-m", model_dir, "--text", text, "-o", tmp_path / "t", "-q"
    )
    assert status == 0, err
    embeddings = np.load(tmp_path / "t.npy")
    with open(tmp_path / "t.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert [r["text"] for r in rows] == [s for s in SENTENCES if s]
    expected = model.encode_text([s for s in SENTENCES if s]).numpy()
    np.testing.assert_allclose(embeddings, expected, atol=1e-6)


def test_bad_inputs_are_skipped_and_listed(model_dir, corpus, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    sf.write(bad / "good.wav", tone(300, 1.0, 0), SR)
    sf.write(bad / "empty.wav", np.zeros(0, dtype=np.float32), SR)
    (bad / "broken.mp3").write_bytes(b"\xff\xfb" + b"not really an mp3" * 20)
    (bad / "zero.ogg").write_bytes(b"")
    empty_folder = tmp_path / "nothing-here"
    empty_folder.mkdir()
    (empty_folder / "notes.md").write_text("no audio")
    empty_text = tmp_path / "empty.txt"
    empty_text.write_text("\n\n")
    missing = tmp_path / "missing.wav"
    index = tmp_path / "index"

    status, _, err = run(
        capsys, "index", "-m", model_dir, bad, empty_folder, missing, empty_text,
        corpus / "sentences.txt", "-o", index, "-q",
    )  # fmt: skip
    assert status == 0  # the good inputs were indexed
    with open(index / "entries.jsonl", encoding="utf-8") as f:
        entries = [json.loads(line) for line in f]
    assert {e["path"] for e in entries} == {str(bad / "good.wav"), str(corpus / "sentences.txt")}
    assert "skipped 6 input(s):" in err
    for path, reason in [
        (bad / "empty.wav", "empty audio"),
        (bad / "broken.mp3", "unreadable audio"),
        (bad / "zero.ogg", "empty file (0 bytes)"),
        (empty_folder, "no audio files"),
        (missing, "no such file or folder"),
        (empty_text, "no sentences"),
    ]:
        assert f"  {path}: {reason}" in err, (path, err)
    with open(index / "index.json", encoding="utf-8") as f:
        assert len(json.load(f)["skipped"]) == 6

    # --strict turns skipped inputs into a non-zero exit status, output still written
    status, _, _ = run(
        capsys, "embed", "-m", model_dir, bad, "-o", tmp_path / "e.npy", "-q", "--strict"
    )
    assert status == 3 and np.load(tmp_path / "e.npy").shape == (1, 32)

    # nothing usable: an error, and no output
    status, _, err = run(
        capsys, "index", "-m", model_dir, empty_folder, missing, "-o", tmp_path / "none", "-q"
    )
    assert status == 1 and not (tmp_path / "none").exists()
    assert f"{empty_folder}: no audio files" in err and f"{missing}: no such file" in err

    # a missing audio query is reported, not a crash
    status, out, err = run(capsys, "search", index, "--audio", missing, "-q")
    assert status == 1 and f"{missing}: no such file" in err


def test_clear_errors_for_bad_model_and_index(model_dir, tmp_path, capsys):
    status, _, err = run(capsys, "search", tmp_path, "query", "-q")
    assert status == 1 and "not a sense index" in err
    sf.write(tmp_path / "a.wav", tone(200, 1.0, 0), SR)  # inputs are checked first
    status, _, err = run(
        capsys, "embed", "-m", tmp_path / "nope", tmp_path, "-o", tmp_path / "x", "-q"
    )
    assert status == 1 and "nope" in err and "no such model folder" in err
