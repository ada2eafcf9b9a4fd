"""How an index stores its rows: float32, float16 or 8-bit codes (faiss's SQ8).

``int8`` storage keeps one byte a dimension, a quarter of float32: each
dimension's range ``[vmin, vmin + vdiff]`` (trained on the rows) is cut into
255 steps, as faiss's ``ScalarQuantizer`` ``QT_8bit`` does, and a row is
decoded to float32 when scored. The ``[2, D]`` ranges are kept in
``quantizer.npy`` beside the ``[N, D]`` uint8 codes.

Example
-------
>>> import numpy as np
>>> x = np.array([[0.0, 1.0], [1.0, -1.0]], np.float32)
>>> ranges = train_int8(x)
>>> codes = encode_int8(x, ranges)
>>> codes.dtype, bool(np.abs(decode_int8(codes, ranges) - x).max() < 1e-2)
(dtype('uint8'), True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: How embeddings can be stored: float16 halves the folder (scores agree to ~1e-3),
#: int8 quarters it (8-bit codes, scores agree to ~1e-2).
STORAGE_DTYPES = ("float32", "float16", "int8")
#: Steps of the 8-bit code (faiss ``QT_8bit``).
INT8_STEPS = 255
QUANTIZER_FILE = "quantizer.npy"


def train_int8(embeddings: np.ndarray) -> np.ndarray:
    """``[2, D]`` float32: each dimension's ``vmin`` and ``vdiff`` (faiss's min-max training).

    Example
    -------
    >>> import numpy as np
    >>> train_int8(np.array([[0.0, 2.0], [1.0, -2.0]], np.float32)).tolist()
    [[0.0, -2.0], [1.0, 4.0]]
    """
    import faiss
    import numpy as np

    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    quantizer = faiss.ScalarQuantizer(x.shape[1], faiss.ScalarQuantizer.QT_8bit)
    quantizer.train(x)
    return faiss.vector_to_array(quantizer.trained).reshape(2, x.shape[1])


def encode_int8(embeddings: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """``[N, D]`` uint8 codes (faiss's: ``floor(255 * clip((x - vmin) / vdiff, 0, 1))``).

    Example
    -------
    >>> import numpy as np
    >>> encode_int8(np.array([[0.5, 9.0]], np.float32), np.array([[0, 0], [1, 1]], np.float32))
    array([[127, 255]], dtype=uint8)
    """
    import numpy as np

    x = (np.asarray(embeddings, dtype=np.float32) - ranges[0]) / np.where(
        ranges[1] > 0, ranges[1], 1
    )
    return (INT8_STEPS * np.clip(x, 0, 1)).astype(np.uint8)


def decode_int8(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """``[N, D]`` float32 rows of ``[N, D]`` uint8 codes (faiss's: ``vmin + (c + .5) / 255 * vdiff``).

    Example
    -------
    >>> import numpy as np
    >>> decode_int8(np.array([[0, 255]], np.uint8), np.array([[0, 0], [255, 255]], np.float32))
    array([[  0.5, 255.5]], dtype=float32)
    """
    import numpy as np

    out = np.asarray(codes, dtype=np.float32)
    out += np.float32(0.5)
    out /= np.float32(INT8_STEPS)
    out *= ranges[1]
    out += ranges[0]
    return out


def stored(embeddings: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``[N, D]`` float32 embeddings as stored with ``dtype``: ``(rows, ranges or None)``.

    Example
    -------
    >>> import numpy as np
    >>> rows, ranges = stored(np.eye(2, dtype=np.float32), "int8")
    >>> rows.tolist(), ranges.shape, stored(np.eye(2, dtype=np.float32), "float16")[0].dtype
    ([[255, 0], [0, 255]], (2, 2), dtype('float16'))
    """
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"storage must be one of {STORAGE_DTYPES}, got {dtype!r}")
    if dtype == "int8":
        ranges = train_int8(embeddings)
        return encode_int8(embeddings, ranges), ranges
    return embeddings.astype(dtype, copy=False), None


def as_float32(rows: np.ndarray, ranges: np.ndarray | None) -> np.ndarray:
    """Stored rows as float32: decoded when 8-bit codes, else converted (no copy for float32).

    Example
    -------
    >>> import numpy as np
    >>> as_float32(np.ones((1, 2), np.float16), None).dtype
    dtype('float32')
    """
    import numpy as np

    if ranges is not None:
        return decode_int8(rows, ranges)
    return np.asarray(rows, dtype=np.float32)


__all__ = [
    "QUANTIZER_FILE",
    "STORAGE_DTYPES",
    "as_float32",
    "decode_int8",
    "encode_int8",
    "stored",
    "train_int8",
]
