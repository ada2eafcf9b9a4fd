"""sense.teacher_cache's key: the row hash, the teacher id, which rows are kept,
re-encoded, served or reported stale (survivors of make mutation)."""

import hashlib
import json
import os

import numpy as np
import pytest
import torch

from sense.teacher_cache import (
    TeacherCache,
    TeacherCacheError,
    _encode_shard,
    _prepare,
    _reusable,
    _teacher_id_of,
    _todo,
    row_hash,
)

DIM = 4


class Recorder(torch.nn.Module):
    """Text -> [len(text), number of 'a', 1, 0]: known rows; records what it encodes."""

    output_dim = DIM

    def __init__(self, teacher_id="t1"):
        super().__init__()
        self.teacher_id = teacher_id
        self.seen = []

    def forward(self, texts):
        self.seen.extend(texts)
        return torch.tensor([[len(t), t.count("a"), 1.0, 0.0] for t in texts])


def row(text):
    return [float(len(text)), float(text.count("a")), 1.0, 0.0]


def build(folder, items, encoder=None, **kwargs):
    encoder = encoder or Recorder()
    kwargs = {"progress": False, "chunk_size": 2, **kwargs}
    return TeacherCache.build(str(folder), items, encoder, **kwargs), encoder


def test_row_hash_is_blake2b_of_teacher_and_text():
    expected = hashlib.blake2b(b"t1\x00hello", digest_size=16).hexdigest()
    assert row_hash("t1", "hello") == expected and len(expected) == 32
    assert row_hash("t1", "hello") != row_hash("t1\x00", "hello"[1:])  # the separator counts


def test_teacher_id_from_the_argument_or_the_encoder():
    assert _teacher_id_of(Recorder("enc"), None) == "enc"
    assert _teacher_id_of(Recorder("enc"), "given") == "given"
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="^pass teacher_id: .*; Recorder has no teacher_id"):
            _teacher_id_of(Recorder(bad), None)
    with pytest.raises(ValueError, match="; object has no teacher_id attribute"):
        _teacher_id_of(object(), None)


def test_todo_longest_transcript_first_ties_in_row_order():
    pairs = [("a", "xx"), ("b", "xxxx"), ("c", "x"), ("d", "xxxx"), ("e", "xx"), ("f", "xxxxx")]
    done = np.array([False, False, False, False, False, True])
    assert _todo(done, pairs).tolist() == [1, 3, 0, 4, 2]


@pytest.mark.parametrize(
    "old, new, ok",
    [
        (("float16", 4), ("float16", 4), True),
        (("float32", 4), ("float16", 4), True),  # narrowing: no precision lost
        (("float16", 4), ("float32", 4), False),
        (("float32", 4), ("float32", 8), False),
        (("float16", 4), ("float16", 8), False),
    ],
)
def test_rows_are_reusable_with_the_same_dim_and_no_loss_of_precision(old, new, ok):
    assert _reusable({"dtype": old[0], "dim": old[1]}, {"dtype": new[0], "dim": new[1]}) is ok


def test_a_new_layout_keeps_every_valid_row_including_the_first(tmp_path):
    items = {"u0": "aaa", "u1": "ab", "u2": "b"}
    build(tmp_path, items)
    # a new order, one row added and one changed: a new matrix, old rows copied
    again = {"u9": "new", "u2": "b", "u1": "changed", "u0": "aaa"}
    cache, encoder = build(tmp_path, again)
    assert sorted(encoder.seen) == ["changed", "new"]
    assert cache.matrix.dtype == np.float16 and cache.matrix.shape == (4, DIM)
    for uid, text in again.items():
        assert cache[uid].tolist() == row(text)
    # float32 rows serve a float16 cache; float16 rows do not serve a float32 one
    cache, encoder = build(tmp_path, again, dtype="float32")
    assert sorted(encoder.seen) == sorted(again.values()) and cache.matrix.dtype == np.float32
    cache, encoder = build(tmp_path, again, dtype="float16")
    assert encoder.seen == [] and cache.matrix.dtype == np.float16


def test_prepare_marks_changed_rows_undone_on_disk_before_encoding(tmp_path):
    folder = str(tmp_path)
    items = {"u0": "aaa", "u1": "ab", "u2": "b"}
    build(folder, items)
    pairs = [("u0", "aaa"), ("u1", "zz"), ("u2", "b")]
    index, done = _prepare(folder, pairs, "t1", DIM, "float16")
    assert done.tolist() == [True, False, True]
    assert index["hashes"] == [row_hash("t1", t) for _, t in pairs]
    assert index["ids"] == ["u0", "u1", "u2"] and (index["dim"], index["dtype"]) == (DIM, "float16")
    # what a crash right now would leave: u1 is not served
    partial = TeacherCache.open(folder, require_complete=False)
    assert "u0" in partial and "u1" not in partial and "u2" in partial
    with pytest.raises(TeacherCacheError, match=r"^utterance 'u1' has no embedding yet in "):
        partial["u1"]
    with pytest.raises(KeyError, match="'u7' is not in the teacher cache"):
        partial["u7"]
    assert "u7" not in partial
    with open(os.path.join(folder, "index.json")) as f:
        assert json.load(f)["hashes"] == index["hashes"]
    assert partial["u2"].tolist() == row("b")


def test_another_teacher_reencodes_every_row(tmp_path):
    items = {"u0": "aaa", "u1": "ab"}
    build(tmp_path, items)
    cache, encoder = build(tmp_path, items, Recorder("t2"))
    assert sorted(encoder.seen) == ["aaa", "ab"] and cache.teacher_id == "t2"


def test_verify_lists_at_most_ten_ids_of_each_problem(tmp_path):
    items = {f"u{i:02d}": "a" * (i + 1) for i in range(14)}
    cache, _ = build(tmp_path, items)
    stale = {uid: text + "!" for uid, text in list(items.items())[:12]}
    stale.update({"x1": "new", "x2": "new"})
    with pytest.raises(TeacherCacheError) as caught:
        cache.verify(stale)
    shown = ", ".join(repr(f"u{i:02d}") for i in range(10))
    assert str(caught.value) == (
        f"teacher cache {str(tmp_path)!r} is stale: 2 missing (e.g. 'x1', 'x2'); "
        f"12 with a changed transcript (e.g. {shown}); "
        "run TeacherCache.build with the current manifest"
    )
    cache.verify(items, teacher_id="t1")
    with pytest.raises(TeacherCacheError, match="built by 't1', not by 't2'; rebuild it"):
        cache.verify(items, teacher_id="t2")


def test_todo_keeps_row_order_among_many_equal_lengths():
    """40 rows: beyond the few elements numpy's default sort keeps in order."""
    pairs = [(f"u{i}", "x" * (1 + (i % 3 == 0))) for i in range(40)]
    done = np.zeros(40, dtype=bool)
    long_rows = [i for i in range(40) if i % 3 == 0]
    assert _todo(done, pairs).tolist() == long_rows + [i for i in range(40) if i % 3]


def test_rows_a_shard_holds_are_merged_not_encoded_again(tmp_path):
    """What a rank of an interrupted distributed build left is taken by the next build."""
    folder = str(tmp_path)
    pairs = [("u0", "aaa"), ("u1", "ab"), ("u2", "b")]
    index, _ = _prepare(folder, pairs, "t1", DIM, "float16")
    _encode_shard(folder, index, np.array([0, 2]), pairs, Recorder(), None, 2, False, 0)
    assert any(name.startswith("shard-") for name in os.listdir(folder))
    cache, encoder = build(folder, dict(pairs))
    assert encoder.seen == ["ab"]
    assert [cache[uid].tolist() for uid, _ in pairs] == [row(t) for _, t in pairs]
    assert not any(name.startswith("shard-") for name in os.listdir(folder))


def test_an_unreadable_cache_is_rebuilt_from_scratch(tmp_path):
    items = {"u0": "aaa", "u1": "ab"}
    build(tmp_path, items)
    (tmp_path / "index.json").write_text("{not json", encoding="utf-8")
    cache, encoder = build(tmp_path, items)
    assert sorted(encoder.seen) == ["aaa", "ab"] and cache["u1"].tolist() == row("ab")
