"""The recordings an index points at, numbered, so that the server serves those and no others.

A file is asked for by its number (``/audio/3``), never by a path: nothing
outside the index can be named, whatever the request holds.
"""

from __future__ import annotations

import os

AUDIO_ROUTE = "/audio"


class AudioFiles:
    """The audio files of an index's entries, in the order they first appear.

    Parameters
    ----------
    entries : list of dict
        The index's entries; those of kind ``audio`` give the files.
    root : str
        The folder relative paths are read from (where ``sense index`` ran).

    Example
    -------
    >>> files = AudioFiles([{"kind": "audio", "path": "a.wav"}, {"kind": "text", "path": "s.txt"},
    ...                     {"kind": "audio", "path": "b.mp3"}, {"kind": "audio", "path": "a.wav"}],
    ...                    root="/data")
    >>> len(files), files.url({"kind": "audio", "path": "b.mp3"}), files.url({"kind": "text"})
    (2, '/audio/1', None)
    >>> files.local_path(1), files.local_path(2)
    ('/data/b.mp3', None)
    """

    def __init__(self, entries, root: str = "."):
        self.root = os.path.abspath(root)
        self.paths: list[str] = []
        self._numbers: dict[str, int] = {}
        for entry in entries:
            path = entry.get("path")
            if entry.get("kind") == "audio" and path and path not in self._numbers:
                self._numbers[path] = len(self.paths)
                self.paths.append(path)

    def __len__(self) -> int:
        return len(self.paths)

    def url(self, entry: dict) -> str | None:
        """``/audio/<number>`` of an audio entry's file; ``None`` for a sentence."""
        number = self._numbers.get(entry.get("path")) if entry.get("kind") == "audio" else None
        return None if number is None else f"{AUDIO_ROUTE}/{number}"

    def local_path(self, number: int) -> str | None:
        """Where file ``number`` is on this machine; ``None`` for a number the index lacks."""
        if not 0 <= number < len(self.paths):
            return None
        return os.path.join(self.root, self.paths[number])
