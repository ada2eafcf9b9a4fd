"""`sense index` resumes an interrupted build, and --add / --remove update an index (issue 31)."""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from test_cli import SR, tone

import sense.index
from sense.cli import main
from sense.export import WindowSettings, export_model
from sense.index import PARTIAL_SUFFIX, load_index
from sense.inference import SENSE
from sense.lobes.speech import HFSpeechEncoder
from sense.nnet.pooling import AttentivePooling

INTERRUPTED = 130
SENTENCES = ["the cat sleeps on the red sofa", "le chat dort sur le canapé rouge"]
BATCH = 2


def export(folder, w2v_bert, xlmr, seed: int) -> str:
    encoder = HFSpeechEncoder(w2v_bert)
    torch.manual_seed(seed)
    pooling = AttentivePooling(encoder.output_dim)
    windows = WindowSettings(max_duration=3.0, window=2.0, overlap=0.5)
    return export_model(folder, encoder, pooling, teacher=xlmr, windows=windows)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_w2v_bert, tiny_xlmr):
    root = tmp_path_factory.mktemp("incremental-models")
    return [export(str(root / f"m{seed}"), tiny_w2v_bert, tiny_xlmr, seed) for seed in (0, 1)]


@pytest.fixture
def corpus(tmp_path):
    """Five short clips, a 4 s talk (cut into windows) and a text file, in a fresh folder."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, f0 in enumerate([150, 230, 340, 520, 700]):
        sf.write(clips / f"clip{i}.wav", tone(f0, 1.0 + 0.1 * i, i), SR)
    talk = np.concatenate([tone(f0, 1.0, 10 + i) for i, f0 in enumerate([180, 260, 390, 610])])
    sf.write(clips / "talk.wav", talk, SR)
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return tmp_path


def audio_files(corpus) -> list[str]:
    return sorted(os.path.normpath(str(p)) for p in (corpus / "clips").iterdir())


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def index(capsys, model, output, *inputs, options=("-q",)):
    """``sense index`` on CPU with batches of two files; returns (status, stderr)."""
    argv = ["index", "-m", model, *inputs, "-o", output, "--device", "cpu"]
    status, _, err = run(capsys, *argv, "--batch-size", BATCH, *options)
    return status, err


class Encoded(list):
    """The files of each ``encode_files`` call; after ``stop_after(n)`` calls, Ctrl-C."""

    limit = None

    def stop_after(self, calls: int | None) -> None:
        self.limit = calls

    def files(self) -> list[str]:
        return [path for call in self for path in call]


@pytest.fixture
def encoded(monkeypatch):
    calls = Encoded()
    original = SENSE.encode_files

    def encode_files(self, paths, **kwargs):
        if calls.limit is not None and len(calls) >= calls.limit:
            raise KeyboardInterrupt
        calls.append(list(paths))
        return original(self, paths, **kwargs)

    monkeypatch.setattr(SENSE, "encode_files", encode_files)
    return calls


def assert_same_index(a, b):
    a, b = load_index(a), load_index(b)
    assert a.entries == b.entries
    assert np.array_equal(a.embeddings, b.embeddings)  # bit for bit


def by_id(folder) -> dict[str, np.ndarray]:
    loaded = load_index(folder)
    ids = [e["id"] for e in loaded.entries]
    assert len(set(ids)) == len(ids), "an entry is in the index twice"
    return dict(zip(ids, loaded.embeddings))


def top_ids(folder, queries: np.ndarray, k: int = 4) -> list[list[str]]:
    return [[h["id"] for h in hits] for hits in load_index(folder).search(queries, k=k)]


# --- resumable ---------------------------------------------------------------------------


def test_an_interrupted_build_resumes_without_embedding_a_finished_file_again(
    models, corpus, encoded, capsys
):
    inputs = (corpus / "clips", corpus / "sentences.txt")
    reference = corpus / "reference.index"
    assert index(capsys, models[0], reference, *inputs)[0] == 0
    encoded.clear()

    output = corpus / "my.index"
    encoded.stop_after(2)  # two batches of two files finished, then Ctrl-C
    status, err = index(capsys, models[0], output, *inputs)
    assert status == INTERRUPTED, err
    assert "run the same command again" in err
    partial = corpus / f"my.index{PARTIAL_SUFFIX}"
    assert not output.exists() and partial.is_dir()
    # a job killed while writing leaves a temporary file: never read
    (partial / "done-0123456789abcdef.npz.77-deadbeef.tmp").write_bytes(b"PK\x03\x04half")
    finished = encoded.files()
    assert len(finished) == 2 * BATCH

    encoded.clear()
    encoded.stop_after(None)
    status, err = index(capsys, models[0], output, *inputs, options=())
    assert status == 0, err
    assert f"resuming: {len(finished)} file(s) already embedded" in err
    assert sorted(finished + encoded.files()) == audio_files(corpus)  # each file once
    assert_same_index(output, reference)
    assert not partial.exists()


def test_work_made_with_other_settings_is_not_reused(models, corpus, encoded, capsys):
    output = corpus / "my.index"
    encoded.stop_after(1)
    assert index(capsys, models[0], output, corpus / "clips")[0] == INTERRUPTED
    encoded.clear()
    encoded.stop_after(None)
    status, err = index(capsys, models[0], output, corpus / "clips", options=("--window", "1.5"))
    assert status == 0, err
    assert "another model or settings: not reused" in err
    assert sorted(encoded.files()) == audio_files(corpus)


def test_progress_counts_hours_and_files_and_is_silenced_by_quiet(models, corpus, capsys):
    status, err = index(capsys, models[0], corpus / "a.index", corpus / "clips", options=())
    assert status == 0, err
    assert "h of audio" in err and "/6 files" in err
    status, err = index(capsys, models[0], corpus / "b.index", corpus / "clips")
    assert status == 0 and err == ""


# --- incremental -------------------------------------------------------------------------


def rewrite_keeping_size_and_time(path, f0: float) -> None:
    """New content, same length and modification time: only the content hash tells."""
    stat = os.stat(path)
    data, _ = sf.read(path, dtype="float32")
    sf.write(path, tone(f0, len(data) / SR, 99), SR)
    assert os.path.getsize(path) == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_add_embeds_new_and_changed_files_only_and_matches_a_rebuild(
    models, corpus, encoded, capsys
):
    clips = audio_files(corpus)
    output = corpus / "my.index"
    assert index(capsys, models[0], output, *clips[:3], corpus / "sentences.txt")[0] == 0
    rewrite_keeping_size_and_time(clips[1], 900)
    encoded.clear()
    status, err = index(capsys, models[0], output, "--add", *clips, options=())
    assert status == 0, err
    assert "2 file(s) unchanged" in err
    assert sorted(encoded.files()) == sorted(clips[1:2] + clips[3:])

    rebuilt = corpus / "rebuilt.index"
    assert index(capsys, models[0], rebuilt, *clips, corpus / "sentences.txt")[0] == 0
    added, fresh = by_id(output), by_id(rebuilt)
    assert sorted(added) == sorted(fresh)
    for key, embedding in fresh.items():
        np.testing.assert_allclose(added[key], embedding, atol=1e-5, err_msg=key)
    queries = np.stack(list(fresh.values()))
    assert top_ids(output, queries) == top_ids(rebuilt, queries)

    encoded.clear()  # nothing changed since: nothing embedded, the index unchanged
    before = load_index(output)
    assert index(capsys, models[0], output, "--add", *clips)[0] == 0
    assert encoded == [] and load_index(output).entries == before.entries


def test_language_tags_the_entries_of_its_run_and_a_bad_tag_is_a_usage_error(
    models, corpus, capsys
):
    clips = audio_files(corpus)
    output = corpus / "my.index"
    assert index(capsys, models[0], output, *clips[:2], options=("-q", "--language", "fr"))[0] == 0
    text = corpus / "sentences.txt"
    status, err = index(
        capsys, models[0], output, "--add", text, options=("-q", "--language", "en")
    )
    assert status == 0, err
    languages = [(e["id"], e.get("language")) for e in load_index(output).entries]
    assert languages == [
        (clips[0], "fr"),
        (clips[1], "fr"),
        (f"{os.path.normpath(text)}:1", "en"),
        (f"{os.path.normpath(text)}:2", "en"),
    ]
    rewrite_keeping_size_and_time(clips[1], 900)  # changed, re-embedded: still French
    assert index(capsys, models[0], output, "--add", clips[1])[0] == 0
    assert [e.get("language") for e in load_index(output).entries] == ["fr", "en", "en", "fr"]
    assert index(capsys, models[0], corpus / "untagged.index", clips[0])[0] == 0
    assert "language" not in load_index(corpus / "untagged.index").entries[0]
    with pytest.raises(SystemExit) as stop:
        main(["index", "-m", models[0], clips[0], "-o", str(corpus / "x"), "--language", "fr en"])
    assert stop.value.code == 2
    assert "not a language tag (letters, digits and -, like en or pt-BR): 'fr en'" in (
        capsys.readouterr().err
    )


def test_remove_drops_exactly_the_entries_of_those_files(models, corpus, capsys):
    output = corpus / "my.index"
    assert index(capsys, models[0], output, corpus / "clips", corpus / "sentences.txt")[0] == 0
    before = by_id(output)
    clips = audio_files(corpus)
    removed = [clips[1], clips[-1], os.path.normpath(corpus / "sentences.txt")]  # -1: the talk
    status, _, err = run(capsys, "index", "--remove", *removed, "-o", output)
    assert status == 0, err
    gone = {k for k in before if k.startswith(tuple(removed))}
    assert len(gone) == 1 + 3 + len(SENTENCES)  # a clip, the talk's three windows, the text
    after = by_id(output)
    assert list(after) == [k for k in before if k not in gone]
    assert all(np.array_equal(after[k], before[k]) for k in after)
    assert not set(removed) & set(load_index(output).files)
    status, _, err = run(capsys, "index", "--remove", clips[1], "-o", output)
    assert status == 1 and f"{clips[1]}: not in the index" in err


def test_add_refuses_another_model_or_other_windows_unless_forced(models, corpus, capsys):
    clips = audio_files(corpus)
    output = corpus / "my.index"
    assert index(capsys, models[0], output, *clips[:2])[0] == 0
    before = by_id(output)
    status, err = index(capsys, models[1], output, "--add", clips[2])
    assert status == 2 and "was built with the model" in err and "--force" in err
    status, err = index(capsys, models[0], output, "--add", clips[2], options=("--window", "1"))
    assert status == 2 and "built with --window 2.0" in err
    assert by_id(output).keys() == before.keys()
    assert index(capsys, models[1], output, "--add", clips[2], options=("-q", "--force"))[0] == 0
    assert len(by_id(output)) == len(before) + 1


def test_a_version_1_index_is_read_and_added_to(models, corpus, capsys):
    clips = audio_files(corpus)
    output = corpus / "my.index"
    assert index(capsys, models[0], output, *clips[:2])[0] == 0
    os.remove(output / "files.jsonl")
    info = json.loads((output / "index.json").read_text())
    (output / "index.json").write_text(json.dumps({**info, "format_version": 1}))
    assert load_index(output).files == {}
    assert index(capsys, models[0], output, "--add", *clips[:3])[0] == 0
    assert len(by_id(output)) == 3  # the known files embedded again, not twice
    assert json.loads((output / "index.json").read_text())["format_version"] == 2
    shutil.rmtree(output)


# --- float16 storage ---------------------------------------------------------------------


def test_float16_storage_is_memory_mapped_and_finds_float32s_top_k(
    models, corpus, capsys, monkeypatch
):
    # recordings only: the tiny random teacher embeds the two sentences alike (0.99999),
    # a tie that float16's rounding (~1e-3) may break either way
    full, half = corpus / "f32.index", corpus / "f16.index"
    assert index(capsys, models[0], full, corpus / "clips")[0] == 0
    status, _ = index(
        capsys, models[0], half, corpus / "clips", options=("-q", "--dtype", "float16")
    )
    assert status == 0
    size = os.path.getsize
    assert size(half / "embeddings.npy") < 0.6 * size(full / "embeddings.npy")
    loaded = load_index(half)
    assert loaded.info["dtype"] == "float16" and loaded.embeddings.dtype == np.float16
    assert not loaded.embeddings.flags.writeable  # memory-mapped, not read into memory

    queries = load_index(full).embeddings
    hits = [load_index(f).search(queries, k=4) for f in (full, half)]
    assert [[h["id"] for h in q] for q in hits[0]] == [[h["id"] for h in q] for q in hits[1]]
    scores = [np.array([[h["score"] for h in q] for q in hit]) for hit in hits]
    np.testing.assert_allclose(scores[1], scores[0], atol=2e-3)

    monkeypatch.setattr(sense.index, "SEARCH_ROWS", 3)  # searched in blocks, merged alike
    assert top_ids(full, queries) == [[h["id"] for h in q] for q in hits[0]]
    clip = audio_files(corpus)[2]
    status, out, err = run(capsys, "search", half, "--audio", clip, "-k", 1, "--json", "-q")
    assert status == 0, err
    assert json.loads(out)[0]["hits"][0]["id"] == clip
