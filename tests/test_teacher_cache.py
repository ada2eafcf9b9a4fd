"""The teacher cache encodes each transcript once and never serves a stale row."""

import glob
import os
import pickle
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sense.lobes.text import SentenceEncoder
from sense.teacher_cache import TeacherCache, TeacherCacheError, build_distributed
from sense.testing.tiny import build_tiny_xlm_roberta

DIM = 16
FP16_ATOL = 2e-3
N_ITEMS = 10
CHUNK = 3


class CountingEncoder(nn.Module):
    """A small deterministic text encoder that records every text it encodes.

    Bytes of the text go through a fixed random ``EmbeddingBag`` (mean), then
    L2 normalisation. ``fail_on_call`` makes the n-th call raise, as a crash
    in the middle of a build would.
    """

    def __init__(self, teacher_id="fake-teacher", fail_on_call=None, scale=1.0):
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.EmbeddingBag(256, DIM, mode="mean")
        self.output_dim = DIM
        self.teacher_id = teacher_id
        self.fail_on_call = fail_on_call
        self.scale = scale
        self.calls = 0
        self.seen = Counter()

    def forward(self, texts):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("simulated crash")
        self.seen.update(texts)
        out = []
        for text in texts:
            data = torch.tensor(list(text.encode()) or [0], dtype=torch.long)
            out.append(self.table(data.unsqueeze(0))[0])
        return F.normalize(torch.stack(out), dim=-1) * self.scale

    @property
    def n_encoded(self):
        return sum(self.seen.values())


def make_items(n=N_ITEMS):
    return {f"utt{i:02d}": f"transcript number {i} " + "la " * (i % 4) for i in range(n)}


def build(folder, items, encoder, **kwargs):
    kwargs = {"chunk_size": CHUNK, "progress": False, **kwargs}
    return TeacherCache.build(str(folder), items, encoder, **kwargs)


def all_vectors(cache, ids):
    return cache.get_batch(list(ids)).numpy()


def test_first_build_encodes_every_text_once_and_lookups_match(tmp_path):
    items = make_items()
    encoder = CountingEncoder()
    cache = build(tmp_path, items, encoder)
    assert encoder.n_encoded == N_ITEMS and set(encoder.seen.values()) == {1}
    assert len(cache) == N_ITEMS and cache.dim == DIM and cache.dtype == "float16"
    assert "utt03" in cache and "nope" not in cache
    expected = encoder(list(items.values())).detach()
    vector = cache["utt03"]
    assert vector.shape == (DIM,) and vector.dtype == torch.float32
    torch.testing.assert_close(vector, expected[3], atol=FP16_ATOL, rtol=0)
    batch = cache.get_batch(["utt07", "utt01", "utt07"])
    assert batch.shape == (3, DIM) and batch.dtype == torch.float32
    torch.testing.assert_close(batch, expected[[7, 1, 7]], atol=FP16_ATOL, rtol=0)
    with pytest.raises(KeyError, match="nope"):
        cache["nope"]


def test_float32_storage_is_exact(tmp_path):
    items = make_items()
    encoder = CountingEncoder()
    cache = build(tmp_path, items, encoder, dtype="float32")
    expected = encoder(list(items.values())).detach()
    torch.testing.assert_close(cache.get_batch(list(items)), expected, atol=1e-7, rtol=0)


def test_second_build_encodes_nothing(tmp_path):
    items = make_items()
    first = build(tmp_path, items, CountingEncoder())
    encoder = CountingEncoder()
    second = build(tmp_path, items, encoder)
    assert encoder.calls == 0
    assert second.matrix_file == first.matrix_file
    np.testing.assert_array_equal(all_vectors(second, items), all_vectors(first, items))


def test_changed_transcript_is_reencoded_alone(tmp_path):
    items = make_items()
    before = build(tmp_path, items, CountingEncoder())
    old = all_vectors(before, items)
    items["utt04"] = "a corrected transcript"
    encoder = CountingEncoder()
    after = build(tmp_path, items, encoder)
    assert encoder.seen == Counter({"a corrected transcript": 1})
    new = all_vectors(after, items)
    changed = list(items).index("utt04")
    np.testing.assert_array_equal(np.delete(new, changed, 0), np.delete(old, changed, 0))
    torch.testing.assert_close(
        after["utt04"], encoder(["a corrected transcript"])[0].detach(), atol=FP16_ATOL, rtol=0
    )


def test_added_and_removed_rows_reuse_the_rest(tmp_path):
    items = make_items()
    before = build(tmp_path, items, CountingEncoder())
    old = {uid: before[uid] for uid in items}
    del items["utt00"], items["utt05"]
    items["new1"], items["new2"] = "a new utterance", "another new utterance"
    encoder = CountingEncoder()
    after = build(tmp_path, items, encoder)
    assert encoder.seen == Counter({"a new utterance": 1, "another new utterance": 1})
    assert len(after) == N_ITEMS and "utt00" not in after and "new2" in after
    for uid in items:
        if uid in old:
            torch.testing.assert_close(after[uid], old[uid], atol=0, rtol=0)
    # The old generation of files is gone: one matrix, one progress file.
    assert len(glob.glob(os.path.join(tmp_path, "embeddings-*.npy"))) == 1
    assert len(glob.glob(os.path.join(tmp_path, "done-*.npy"))) == 1


def test_another_teacher_reencodes_everything(tmp_path):
    items = make_items()
    build(tmp_path, items, CountingEncoder(teacher_id="teacher-a"))
    encoder = CountingEncoder(teacher_id="teacher-b")
    cache = build(tmp_path, items, encoder)
    assert encoder.n_encoded == N_ITEMS
    assert cache.teacher_id == "teacher-b"
    # An explicit teacher_id overrides the encoder's.
    again = CountingEncoder(teacher_id="teacher-b")
    build(tmp_path, items, again, teacher_id="teacher-c")
    assert again.n_encoded == N_ITEMS


def test_interrupted_build_resumes_with_only_the_missing_rows(tmp_path):
    items = make_items()
    crashing = CountingEncoder(fail_on_call=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(tmp_path / "resumed", items, crashing)
    done_before = 2 * CHUNK
    assert crashing.n_encoded == done_before
    with pytest.raises(TeacherCacheError, match="unfinished"):
        TeacherCache.open(str(tmp_path / "resumed"))
    partial = TeacherCache.open(str(tmp_path / "resumed"), require_complete=False)
    assert int(partial.done.sum()) == done_before
    with pytest.raises(TeacherCacheError, match="no embedding yet"):
        partial.get_batch(list(items))

    encoder = CountingEncoder()
    resumed = build(tmp_path / "resumed", items, encoder)
    assert encoder.n_encoded == N_ITEMS - done_before
    assert not set(encoder.seen) & set(crashing.seen)
    clean = build(tmp_path / "clean", items, CountingEncoder())
    np.testing.assert_array_equal(all_vectors(resumed, items), all_vectors(clean, items))


def test_verify_catches_changed_and_missing_transcripts(tmp_path):
    items = make_items()
    cache = build(tmp_path, items, CountingEncoder())
    cache.verify(items)
    cache.verify({"utt01": items["utt01"]}, teacher_id="fake-teacher")
    changed = dict(items, utt02="something else")
    with pytest.raises(TeacherCacheError, match=r"1 with a changed transcript \(e.g. 'utt02'\)"):
        cache.verify(changed)
    with pytest.raises(TeacherCacheError, match=r"1 missing \(e.g. 'extra'\)"):
        cache.verify(dict(items, extra="not encoded"))
    with pytest.raises(TeacherCacheError, match="was built by 'fake-teacher'"):
        cache.verify(items, teacher_id="another-teacher")


def test_cache_travels_to_dataloader_workers(tmp_path):
    items = make_items()
    cache = build(tmp_path, items, CountingEncoder())
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._matrix is None
    torch.testing.assert_close(clone["utt05"], cache["utt05"], atol=0, rtol=0)
    ids = list(items)
    loader = torch.utils.data.DataLoader(
        ids, batch_size=4, num_workers=2, collate_fn=cache.get_batch
    )
    torch.testing.assert_close(torch.cat(list(loader)), cache.get_batch(ids), atol=0, rtol=0)


def test_bad_inputs_and_bad_teachers_raise(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        build(tmp_path, {}, CountingEncoder())
    with pytest.raises(ValueError, match="'a' appears twice"):
        build(tmp_path, [("a", "x"), ("a", "y")], CountingEncoder())
    with pytest.raises(TypeError, match="'a' is a NoneType"):
        build(tmp_path, {"a": None}, CountingEncoder())
    with pytest.raises(ValueError, match="float32"):
        build(tmp_path, make_items(), CountingEncoder(scale=1e6))
    with pytest.raises(TeacherCacheError, match="no teacher cache"):
        TeacherCache.open(str(tmp_path / "nothing-here"))


def test_sentence_encoder_teacher_and_build_distributed(tmp_path):
    teacher = SentenceEncoder(build_tiny_xlm_roberta(str(tmp_path / "xlmr")), batch_size=4)
    items = make_items()
    made = []

    def make_encoder():
        made.append(teacher)
        return teacher

    cache = build_distributed(str(tmp_path / "cache"), items, make_encoder, progress=False)
    assert len(made) == 1 and cache.teacher_id == teacher.teacher_id
    expected = teacher(list(items.values()))
    torch.testing.assert_close(cache.get_batch(list(items)), expected, atol=FP16_ATOL, rtol=0)
    cache.verify(items, teacher.teacher_id)
