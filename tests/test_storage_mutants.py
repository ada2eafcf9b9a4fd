"""8-bit codes of an index's rows, pinned by hand (the mutants of ``sense/storage.py``)."""

import warnings

import numpy as np
import pytest

from sense.storage import as_float32, decode_int8, encode_int8, stored, train_int8

pytest.importorskip("faiss")


def test_float64_rows_train_the_same_ranges():
    x = np.array([[0.0, 2.0], [1.0, -2.0]])
    assert train_int8(x).tolist() == [[0.0, -2.0], [1.0, 4.0]]


def test_rows_added_outside_the_trained_range_clip_to_the_ends():
    # Ranges trained on earlier rows: dimension 0 over [0, 1], dimension 1 constant 0.
    ranges = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero range
        codes = encode_int8(np.array([[-0.5, 0.0], [1.5, 0.5], [0.5, -0.25]]), ranges)
    # below the range -> 0, above -> 255; a constant dimension divides by 1:
    # floor(255 * clip(0.5 / 1, 0, 1)) = 127
    assert codes.tolist() == [[0, 0], [255, 127], [127, 0]]
    assert decode_int8(codes, ranges)[:, 1].tolist() == [0.0, 0.0, 0.0]


def test_float_storage_keeps_the_rows_without_a_copy():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    rows, ranges = stored(x, "float32")
    assert rows is x and ranges is None
    half, _ = stored(x, "float16")
    assert half.dtype == np.float16 and as_float32(half, None).tolist() == x.tolist()
    with pytest.raises(ValueError, match="storage must be one of"):
        stored(x, "int4")
