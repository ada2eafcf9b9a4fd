"""Files that appear whole or not at all, and "hub id or local path".

A reader of a file written by :func:`atomic_write` (or a folder published by
:func:`replace_folder`) sees the old version or the new one, never half of
each: the content goes to a temporary name beside the target first, is
flushed to disk, and is then renamed over the target (a rename within one
file system is atomic). A writer that fails leaves the old file in place and
no temporary file behind.

Models are named by a hub id (``"BAAI/bge-m3"``) or a local folder;
:func:`looks_like_path`, :func:`is_hub_id` and :func:`is_local_source` tell
them apart the same way everywhere.

Example
-------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "out", "metrics.json")
>>> write_json_atomic(path, {"R@1": 0.5})
>>> open(path).read()
'{"R@1": 0.5}'
>>> is_local_source("./models/sense"), is_local_source("BAAI/bge-m3")
(True, False)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: Temporary name of a file being written: ``<name>.<pid>-<random>.tmp``
#: (``<name>.<pid>.tmp`` in earlier versions); a module that cleans up after
#: an interrupted write matches its leftovers with this pattern.
TMP_SUFFIX = r"\.\d+(-[0-9a-f]+)?\.tmp"
#: Files up to this size are hashed whole by :func:`content_fingerprint`; of a
#: larger one, its size and its first and last ``FINGERPRINT_SAMPLE`` bytes.
FINGERPRINT_WHOLE = 16 << 20
FINGERPRINT_SAMPLE = 1 << 20
#: A hub repository id: ``name`` or ``org/name``.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

__all__ = [
    "HUB_ID",
    "TMP_SUFFIX",
    "OutputExistsError",
    "atomic_write",
    "check_output_file",
    "check_output_folder",
    "content_fingerprint",
    "file_fingerprint",
    "first_json_line_has",
    "fsync_tree",
    "is_hub_id",
    "is_local_source",
    "looks_like_path",
    "replace_folder",
    "save_npy_atomic",
    "staged_folder",
    "write_json_atomic",
    "write_text_atomic",
]


# ---------------------------------------------------------------------------
# Atomic files and folders
# ---------------------------------------------------------------------------


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any], fsync: bool = True) -> str:
    """Write ``path`` through ``write(tmp_path)``, then rename ``tmp_path`` over it.

    Parameters
    ----------
    path : str or PathLike
        The file to write; its folder is created when missing.
    write : callable
        Writes the whole content to the path it is given (a sibling of
        ``path``, same file system).
    fsync : bool
        Flush the file to disk before the rename, so a crash of the machine
        cannot leave an empty file under the final name. Skip it only for
        files that are cheap to rewrite and written by the thousand.

    Returns
    -------
    str
        ``path``.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = atomic_write(path, lambda tmp: open(tmp, "w").write("hello"))
    >>> open(path).read()
    'hello'
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(tmp)
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str, fsync: bool = True) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.md")
    >>> write_text_atomic(path, "| a |\\n")
    >>> open(path).read()
    '| a |\\n'
    """

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    atomic_write(path, write, fsync=fsync)


def write_json_atomic(path: str | os.PathLike, data: Any, **dump_kwargs: Any) -> None:
    """Write ``data`` as JSON (``json.dump`` with ``dump_kwargs``) to ``path`` atomically.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> write_json_atomic(path, {"é": 1}, ensure_ascii=False)
    >>> open(path, encoding="utf-8").read()
    '{"é": 1}'
    """
    write_text_atomic(path, json.dumps(data, **dump_kwargs))


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` ``array`` to ``path`` (no ``.npy`` added) atomically.

    Example
    -------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> save_npy_atomic(path, np.arange(3))
    >>> np.load(path).tolist()
    [0, 1, 2]
    """

    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def fsync_tree(folder: str | os.PathLike) -> None:
    """Flush every file under ``folder`` to disk (before the folder is renamed)."""
    for root, _, names in os.walk(folder):
        for name in names:
            _fsync_file(os.path.join(root, name))


def replace_folder(tmp: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Move the complete folder ``tmp`` to ``folder``, replacing an old one.

    The old folder is renamed aside first and deleted only once the new one is
    in place, so ``folder`` never holds a mix of old and new files.
    """
    tmp, folder = os.fspath(tmp), os.fspath(folder)
    old = None
    if os.path.lexists(folder):
        parent = os.path.dirname(os.path.abspath(folder))
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.old-", dir=parent)
        os.rmdir(old)
        os.rename(folder, old)
    try:
        os.rename(tmp, folder)
    except OSError:
        if old is not None:
            os.rename(old, folder)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class OutputExistsError(FileExistsError):
    """An output path holds something a command must not replace."""


def check_output_folder(
    folder: str | os.PathLike,
    is_ours: Callable[[str], bool],
    what: str,
    force: bool = False,
    hint: str = "pass force=True",
) -> None:
    """Refuse to replace anything at ``folder`` but an earlier output of the same kind.

    A command that writes a folder (an index, an exported model) replaces it
    whole: run on the wrong path, it would delete the user's files. The path
    may be missing, an empty folder, or a folder ``is_ours`` recognises;
    anything else (a file, a folder of other files) is refused unless
    ``force``.

    Parameters
    ----------
    folder : str or PathLike
        The output path.
    is_ours : callable
        ``is_ours(folder) -> bool``: the folder is an output of this kind.
    what : str
        The kind of output, for the message (``"sense index"``).
    force : bool
        Replace whatever is there.
    hint : str
        How to replace it anyway, for the message (``"pass --force"`` in a command).

    Raises
    ------
    OutputExistsError
        Naming the path and what it holds.

    Example
    -------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_output_folder(folder, lambda f: False, "sense index")  # empty: fine
    >>> _ = open(os.path.join(folder, "notes.txt"), "w").write("mine")
    >>> check_output_folder(folder, lambda f: False, "sense index")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sense.io.OutputExistsError: ...: holds other files (notes.txt), not a sense index; ...
    """
    folder = os.fspath(folder)
    if force or not os.path.lexists(folder):
        return
    if not os.path.isdir(folder) or os.path.islink(folder):
        kind = "a link" if os.path.islink(folder) else "a file"
        problem = f"is {kind}, not a {what} folder"
    else:
        names = sorted(os.listdir(folder))
        if not names or is_ours(folder):
            return
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        problem = f"holds other files ({shown}), not a {what}"
    raise OutputExistsError(
        f"{folder}: {problem}; writing there would delete it: choose another path, or {hint}"
    )


def check_output_file(
    path: str | os.PathLike,
    is_ours: Callable[[str], bool],
    what: str,
    force: bool = False,
    hint: str = "pass force=True",
) -> None:
    """Refuse to replace a file at ``path`` unless it is empty or an earlier output of ``what``.

    Parameters
    ----------
    path : str or PathLike
        The output file.
    is_ours : callable
        ``is_ours(path) -> bool``: the file is an earlier output of this kind.
    what : str
        Who writes it, for the message (``"sense embed"``).
    force : bool
        Replace any file (never a folder).
    hint : str
        How to replace it anyway, for the message.

    Raises
    ------
    OutputExistsError
        Naming the path and what it holds.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out.jsonl")
    >>> check_output_file(path, lambda p: False, "sense slu")  # nothing there: fine
    >>> _ = open(path, "w").write("my notes")
    >>> check_output_file(path, lambda p: False, "sense slu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sense.io.OutputExistsError: ...out.jsonl: a file that sense slu did not write; ...
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        return
    if os.path.isdir(path):
        raise OutputExistsError(f"{path}: is a folder, not a file: choose another path")
    if force or (os.path.isfile(path) and os.path.getsize(path) == 0) or is_ours(path):
        return
    raise OutputExistsError(
        f"{path}: a file that {what} did not write; writing there would replace it: choose "
        f"another path, or {hint}"
    )


def first_json_line_has(path: str | os.PathLike, keys: Collection[str]) -> bool:
    """Whether the first non-blank line of ``path`` is a JSON object with all of ``keys``.

    How a command recognises the JSON lines file it wrote earlier.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out.jsonl")
    >>> _ = open(path, "w").write('{"path": "a.wav", "summary": "Il pleut."}\\n')
    >>> first_json_line_has(path, ("path", "summary")), first_json_line_has(path, ("id",))
    (True, False)
    """
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    return isinstance(record, dict) and all(k in record for k in keys)
    except (OSError, ValueError):
        return False
    return False


@contextmanager
def staged_folder(folder: str | os.PathLike) -> Iterator[str]:
    """A temporary sibling of ``folder`` to fill; published whole when the block ends.

    On success the files are flushed, the folder made world-readable (``0o755``,
    as a ``mkdir`` would) and moved over ``folder`` with :func:`replace_folder`;
    on an error the temporary folder is deleted and ``folder`` is left as it was.

    Example
    -------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "index")
    >>> with staged_folder(target) as tmp:
    ...     write_text_atomic(os.path.join(tmp, "info.txt"), "v1")
    >>> os.listdir(target)
    ['info.txt']
    """
    folder = os.path.abspath(os.fspath(folder))
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.tmp-", dir=parent)
    try:
        yield tmp
        fsync_tree(tmp)
        os.chmod(tmp, 0o755)
        replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _hash_file(digest, path: str, size: int) -> None:
    with open(path, "rb") as f:
        if size <= FINGERPRINT_WHOLE:
            digest.update(f.read())
            return
        digest.update(f.read(FINGERPRINT_SAMPLE))
        f.seek(size - FINGERPRINT_SAMPLE)
        digest.update(f.read(FINGERPRINT_SAMPLE))


def content_fingerprint(folder: str | os.PathLike) -> str:
    """A hash of the files of ``folder`` by content: the same for a copy, new for a retrained model.

    Every file counts by its relative path, its size and its bytes (of a file
    over :data:`FINGERPRINT_WHOLE` bytes, the first and last
    :data:`FINGERPRINT_SAMPLE`): cheap on a multi-GB model, blind to
    modification times. Hidden files and folders (``.cache``, ``.git``) are
    left out.

    Example
    -------
    >>> import os, shutil, tempfile
    >>> a = tempfile.mkdtemp()
    >>> write_text_atomic(os.path.join(a, "w.txt"), "weights")
    >>> b = shutil.copytree(a, os.path.join(tempfile.mkdtemp(), "copy"))
    >>> content_fingerprint(a) == content_fingerprint(b)
    True
    >>> write_text_atomic(os.path.join(b, "w.txt"), "weightz")
    >>> content_fingerprint(a) == content_fingerprint(b)
    False
    """
    import hashlib

    folder = os.fspath(folder)
    digest = hashlib.sha256()
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            path = os.path.join(root, name)
            size = os.path.getsize(path)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            digest.update(f"{rel}\0{size}\0".encode())
            _hash_file(digest, path, size)
    return digest.hexdigest()[:16]


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """What tells whether a file changed: its size, modification time and a content hash.

    The hash covers the whole file up to :data:`FINGERPRINT_WHOLE` bytes, and
    the first and last :data:`FINGERPRINT_SAMPLE` bytes of a larger one (as
    :func:`content_fingerprint`), so a file rewritten with the same size and
    time still counts as changed when its ends differ.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> write_text_atomic(path, "RIFF")
    >>> before = file_fingerprint(path)
    >>> before["size"], len(before["sha"])
    (4, 16)
    >>> write_text_atomic(path, "RIFX")
    >>> file_fingerprint(path)["sha"] == before["sha"]
    False
    """
    import hashlib

    stat = os.stat(path)
    digest = hashlib.sha256()
    _hash_file(digest, os.fspath(path), stat.st_size)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha": digest.hexdigest()[:16]}


# ---------------------------------------------------------------------------
# Hub id or local path
# ---------------------------------------------------------------------------


def looks_like_path(source: str | os.PathLike) -> bool:
    """Whether ``source`` can only be a path, never a hub id.

    True for an absolute path, ``./x``, ``../x``, ``~/x``, anything with more
    than one ``/`` (or with the platform's own separator).

    Example
    -------
    >>> looks_like_path("results/sense/save"), looks_like_path("BAAI/bge-m3")
    (True, False)
    """
    source = os.fspath(source)
    return (
        os.path.isabs(source)
        or source.startswith((".", "~"))
        or source.count("/") > 1
        or (os.sep != "/" and os.sep in source)
    )


def is_hub_id(source: str | os.PathLike) -> bool:
    """Whether ``source`` has the form of a hub repository id (``name`` or ``org/name``).

    A hub id never :func:`looks_like_path`; a string may be neither (``"a b"``).

    Example
    -------
    >>> is_hub_id("facebook/w2v-bert-2.0"), is_hub_id("./w2v-bert")
    (True, False)
    """
    return bool(HUB_ID.match(os.fspath(source)))


def is_local_source(source: str | os.PathLike) -> bool:
    """Whether ``source`` names a local folder rather than a hub id.

    An existing folder is local; so is anything that :func:`looks_like_path`.

    Example
    -------
    >>> import tempfile
    >>> is_local_source(tempfile.mkdtemp()), is_local_source("BAAI/bge-m3")
    (True, False)
    """
    return os.path.isdir(os.fspath(source)) or looks_like_path(source)
