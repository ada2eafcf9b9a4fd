"""The index's search and its resumable work, pinned against numpy (the mutants of ``sense/index.py``)."""

import json
import os
import re

import numpy as np
import pytest
from test_index_ann import clustered, ids, numpy_recall, numpy_top_k

import sense.index as index_module
from sense.ann import held_out_queries, set_depth
from sense.index import PartialWork, SpeechIndex, is_index_folder, load_index
from sense.storage import stored

faiss = pytest.importorskip("faiss")


def entries(rows, kinds=None):
    return [
        {"id": str(i), "kind": kinds[i] if kinds else "audio", "path": f"f{i}.wav"}
        for i in range(rows)
    ]


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_blocks_of_decoded_rows_merge_to_numpys_top_k_with_ties_in_row_order(dtype, monkeypatch):
    # 50 rows searched 7 at a time; rows 3, 20 and 45 are one row, in three blocks
    x = clustered(rows=50, dim=8, seed=1)
    x[[20, 45]] = x[3]
    data, quantizer = stored(x, dtype)
    index = SpeechIndex({"model": "m"}, data, entries(50), quantizer=quantizer)
    monkeypatch.setattr(index_module, "SEARCH_ROWS", 7)
    queries = np.concatenate([x[[3]], held_out_queries(x, n=6, seed=2)])
    decoded = index.rows().astype(np.float64)
    expected = numpy_top_k(decoded, queries, 10)
    assert expected[0, :3].tolist() == [3, 20, 45]
    assert ids(index.search(queries, k=10)) == expected.tolist()


def test_a_selected_kind_found_whole_by_the_ann_is_not_searched_again(monkeypatch):
    # every list probed: the structure finds every audio row itself, row 0 among them
    x = clustered(rows=600)
    x[3] = x[0]  # a tie with row 0: row 0 first
    kinds = ["audio" if i % 3 != 1 else "text" for i in range(600)]
    index = SpeechIndex({"model": "m"}, x, entries(600, kinds), {"f0.wav": {"sha": "0"}})
    index.build_ann("ivf-flat")
    lists = faiss.extract_index_ivf(index.ann).nlist
    set_depth(index.ann, "ivf", lists)
    index.info["ann"]["nprobe"] = lists
    audio = index.select("audio")
    inner = audio.subset(np.arange(0, len(audio), 2))  # a subset of a subset: rows 0, 3, 6, ...
    exact = []
    monkeypatch.setattr(SpeechIndex, "_top_k", lambda self, *a: exact.append(a) or 1 / 0)
    queries = x[[0, 3, 9]]
    hits = inner.search(queries, k=4)
    rows = np.flatnonzero(np.array(kinds) == "audio")[::2]
    assert ids(hits) == rows[numpy_top_k(x[rows], queries, 4)].tolist()
    assert ids(hits)[0][:2] == [0, 3]
    assert [h["id"] for h in audio.search(x[[0]])[0]][0] == "0"  # 5 hits by default
    assert exact == []
    assert [h["rank"] for h in hits[0]] == [1, 2, 3, 4] and len(audio.search(x[[0]])[0]) == 5
    assert inner.files == index.files == {"f0.wav": {"sha": "0"}}


def test_build_ann_defaults_to_auto():
    index = SpeechIndex({"model": "m"}, np.eye(3, dtype=np.float32), entries(3))
    assert index.build_ann() is None and index.info["index_type"] == "auto"


def test_scores_are_rounded_to_six_decimals():
    x = np.array([[1 / 3, 0.0], [0.0, 1.0]], np.float32)
    hits = SpeechIndex({"model": "m"}, x, entries(2)).search(np.array([[1.0, 0.0]]), k=1)
    assert hits[0][0]["score"] == 0.333333


def test_rows_added_to_an_int8_index_are_encoded():
    x = clustered(rows=40, dim=8)
    data, quantizer = stored(x[:30], "int8")
    index = SpeechIndex({"model": "m"}, data, entries(30), quantizer=quantizer)
    index.add(x[30:], entries(10))
    assert index.embeddings.dtype == np.uint8 and len(index) == 40
    step = quantizer[1] / 255  # one code step a dimension; new rows may clip at the ends
    inside = (x[30:] >= quantizer[0]) & (x[30:] <= quantizer[0] + quantizer[1])
    error = np.abs(index.rows(slice(30, None)) - x[30:])
    assert (error[inside] <= np.broadcast_to(step, error.shape)[inside]).all()
    with pytest.raises(ValueError, match="cannot add 2 entries"):
        index.add(x[:1], entries(2))
    with pytest.raises(ValueError, match="8-dim"):
        index.add(np.zeros((1, 4), np.float32), entries(1))


def test_an_index_keeps_float32_rows_and_no_stale_structure():
    index = SpeechIndex({"model": "m", "ann": {"type": "ivf"}}, np.eye(2), entries(2))
    assert index.embeddings.dtype == np.float32 and "ann" not in index.info
    assert (index.info["format_version"], index.info["dtype"]) == (2, "float32")
    with pytest.raises(ValueError, match="2 entries"):
        SpeechIndex({"model": "m"}, np.ones(2, np.float32), entries(2))


def test_the_recall_of_an_int8_structure_is_measured_on_its_decoded_rows():
    x = clustered(rows=3000)
    data, quantizer = stored(x, "int8")
    index = SpeechIndex({"model": "m"}, data, entries(3000), quantizer=quantizer)
    record = index.build_ann("ivf")
    queries = held_out_queries(x, decode=index.rows)
    exact = numpy_top_k(index.rows().astype(np.float64), queries, 10)
    found = index.ann.search(queries, 10)[1]
    assert record["recall_at_10"] == round(numpy_recall(found, exact), 4)


def test_is_index_folder(tmp_path):
    SpeechIndex({"model": "m"}, np.eye(2, dtype=np.float32), entries(2)).save(tmp_path / "a")
    assert is_index_folder(tmp_path / "a")
    (tmp_path / "b").mkdir()
    assert not is_index_folder(tmp_path / "b")
    (tmp_path / "b" / "index.json").write_text(json.dumps({"format": "other"}))
    assert not is_index_folder(tmp_path / "b")
    (tmp_path / "b" / "index.json").write_text("{not json")
    assert not is_index_folder(tmp_path / "b")


def test_an_index_without_a_format_version_is_version_1(tmp_path):
    SpeechIndex({"model": "m"}, np.eye(2, dtype=np.float32), entries(2)).save(tmp_path / "a")
    info = json.loads((tmp_path / "a" / "index.json").read_text())
    del info["format_version"]
    (tmp_path / "a" / "index.json").write_text(json.dumps(info))
    os.remove(tmp_path / "a" / "files.jsonl")  # a version 1 index has none
    assert len(load_index(tmp_path / "a")) == 2


# --- resumable work --------------------------------------------------------------------


def test_a_damaged_record_and_a_cut_write_are_cleared_and_the_rest_read(tmp_path):
    folder = tmp_path / "a.index.partial"
    work, stale = PartialWork.open(folder, {"model": "m"})
    assert stale is False
    work.put({"k1": (np.ones((2, 3)), np.array([[0.0, 1.5], [1.5, 3.0]], np.float32))})
    work.put({"k2": (np.zeros((1, 3), np.float32), None)})
    names = sorted(n for n in os.listdir(folder) if n.startswith("done-"))
    (folder / names[0]).write_bytes(b"PK\x03\x04 cut short")  # damaged
    (folder / "a-cut-write.tmp").write_bytes(b"half")  # sorts before the records
    again, stale = PartialWork.open(folder, {"model": "m"})
    kept = "k2" if "k2" in again else "k1"
    assert stale is False and len(again) == 1
    assert sorted(os.listdir(folder)) == sorted([names[1], "settings.json"])
    embeddings, spans = again.get(kept)
    assert embeddings.dtype == np.float32
    if spans is not None:
        assert spans.dtype == np.float64
    assert PartialWork.is_partial(folder)


def test_records_keep_float32_embeddings_and_float64_spans(tmp_path):
    folder = tmp_path / "a.index.partial"
    work, _ = PartialWork.open(folder, {})
    work.put({"k": (np.ones((2, 3)), np.array([[0.0, 1.5], [1.5, 3.0]], np.float32))})
    embeddings, spans = PartialWork.open(folder, {})[0].get("k")
    assert embeddings.dtype == np.float32 and spans.dtype == np.float64


def test_is_partial_only_for_a_work_folder(tmp_path):
    assert not PartialWork.is_partial(tmp_path)
    (tmp_path / "settings.json").write_text(json.dumps({"format": "other", "settings": {}}))
    assert not PartialWork.is_partial(tmp_path)
    (tmp_path / "settings.json").write_text(json.dumps(["sense-index-partial"]))
    assert not PartialWork.is_partial(tmp_path)


def test_removing_work_twice_is_fine(tmp_path):
    work, _ = PartialWork.open(tmp_path / "w.partial", {})
    work.remove()
    work.remove()
    assert not (tmp_path / "w.partial").exists()


def test_a_record_holding_python_objects_is_not_unpickled(tmp_path):
    folder = tmp_path / "a.index.partial"
    PartialWork.open(folder, {})
    name = folder / "done-0123456789abcdef.npz"
    np.savez(name, keys=np.array(["k"]), emb0=np.array([{"not": "numbers"}], dtype=object))
    work, _ = PartialWork.open(folder, {})
    assert "k" not in work and not name.exists()


# --- damaged and older index folders ----------------------------------------------------


def saved(tmp_path, dtype="float32", rows=4):
    x = clustered(rows=rows, dim=4)
    data, quantizer = stored(x, dtype)
    SpeechIndex({"model": "m"}, data, entries(rows), quantizer=quantizer).save(tmp_path / "i")
    return tmp_path / "i"


def rewrite_info(folder, **changes):
    info = json.loads((folder / "index.json").read_text())
    info.update(changes)
    (folder / "index.json").write_text(json.dumps(info))
    return info


@pytest.mark.parametrize(
    "dtype, array, match",
    [
        ("float32", np.zeros((4, 4), np.uint8), "uint8 array of shape .4, 4., not .N, D. floats"),
        ("int8", np.zeros((4, 4), np.float32), "float32 array of shape .4, 4., not .N, D. 8-bit"),
        ("float32", np.zeros(4, np.float32), "shape .4,., not .N, D. floats"),
    ],
)
def test_embeddings_that_are_not_what_the_description_says_are_refused(
    tmp_path, dtype, array, match
):
    folder = saved(tmp_path, dtype)
    np.save(folder / "embeddings.npy", array)
    with pytest.raises(index_module.IndexFormatError, match=match):
        load_index(folder)


def test_a_description_that_is_not_an_object_or_lacks_a_key_is_refused(tmp_path):
    folder = saved(tmp_path)
    info = json.loads((folder / "index.json").read_text())
    (folder / "index.json").write_text("[1, 2]")
    assert not is_index_folder(folder)
    with pytest.raises(index_module.IndexFormatError, match="not the description of a sense"):
        load_index(folder)
    del info["dim"]
    (folder / "index.json").write_text(json.dumps(info))
    with pytest.raises(index_module.IndexFormatError, match="index.json: no dim"):
        load_index(folder)


def test_entries_with_a_blank_line_and_bad_lines_by_number(tmp_path):
    folder = saved(tmp_path)
    lines = (folder / "entries.jsonl").read_text().splitlines()
    (folder / "entries.jsonl").write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n")
    assert [e["id"] for e in load_index(folder).entries] == ["0", "1", "2", "3"]
    (folder / "entries.jsonl").write_text(lines[0] + '\n["a", "b"]\n')
    with pytest.raises(index_module.IndexFormatError, match="line 2 is not an index entry"):
        load_index(folder)
    (folder / "files.jsonl").write_text('{"path": "a.wav"}\n')
    (folder / "entries.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(index_module.IndexFormatError, match="line 1 is not a file record"):
        load_index(folder)


def test_a_structure_without_a_file_name_and_one_of_other_rows(tmp_path):
    x = clustered(rows=300, dim=4)
    index = SpeechIndex({"model": "m"}, x, entries(300))
    index.build_ann("ivf")
    index.save(tmp_path / "i")
    info = json.loads((tmp_path / "i" / "index.json").read_text())
    del info["ann"]["file"]  # the default name
    (tmp_path / "i" / "index.json").write_text(json.dumps(info))
    assert load_index(tmp_path / "i").ann.ntotal == 300
    other = SpeechIndex({"model": "m"}, x[:200], entries(200))
    other.build_ann("ivf")
    other.save(tmp_path / "o")
    os.replace(tmp_path / "o" / "ann.faiss", tmp_path / "i" / "ann.faiss")
    with pytest.raises(
        index_module.IndexFormatError, match="200 rows of 4 dims for an index of 300"
    ):
        load_index(tmp_path / "i")


def test_a_file_key_ignores_the_order_of_the_fingerprint():
    a = index_module.file_key("a.wav", {"size": 4, "sha": "0"})
    assert a == index_module.file_key("a.wav", {"sha": "0", "size": 4}) and len(a) == 24


def test_refresh_reads_the_records_on_both_sides_of_its_own(tmp_path):
    # record names are hashes of their keys: this process's ("d") sorts between the others'
    folder = tmp_path / "a.index.partial"
    work, _ = PartialWork.open(folder, {})
    work.put({"d": (np.ones((1, 3), np.float32), None)})
    for key in ("k2", "k3", "k4"):
        PartialWork(str(folder), {}).put({key: (np.zeros((1, 3), np.float32), None)})
    work.refresh()
    assert sorted(work.done) == ["d", "k2", "k3", "k4"]


def test_a_newer_format_version_is_refused_with_the_remedy(tmp_path):
    folder = saved(tmp_path)
    rewrite_info(folder, format_version=9)
    with pytest.raises(index_module.IndexFormatError, match="format version 9; .*upgrade sense"):
        load_index(folder)


def test_the_saved_description_is_readable_text_with_its_creation_time(tmp_path):
    x = clustered(rows=2, dim=4)
    names = [
        {"id": "Çatalà «1»", "kind": "text"},
        {"id": "録音 $2", "kind": "audio", "path": "é.wav"},
    ]
    index = SpeechIndex({"model": "modèle"}, x, names, {"é.wav": {"sha": "0"}})
    index.save(tmp_path / "i")
    text = (tmp_path / "i" / "index.json").read_text(encoding="utf-8")
    assert '\n  "model": "modèle",\n' in text
    assert "Çatalà «1»" in (tmp_path / "i" / "entries.jsonl").read_text(encoding="utf-8")
    assert '"path": "é.wav"' in (tmp_path / "i" / "files.jsonl").read_text(encoding="utf-8")
    created = json.loads(text)["created"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", created)
    load_index(tmp_path / "i").save(tmp_path / "j")  # saved again: created when first built
    assert json.loads((tmp_path / "j" / "index.json").read_text())["created"] == created
