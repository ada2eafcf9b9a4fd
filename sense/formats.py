"""Model folders: the format each export writes in ``meta.json`` and the interface that loads it.

Every export (:func:`sense.export.export_model`, the translator, ZeroST, SLU,
summarizer and dual encoder exports) writes ``{"format": NAME, ...}`` into
``meta.json``. This module maps those names to the kind of model, for
messages, and to the class whose ``from_hparams`` loads it. It imports
nothing heavy, so a command can check what a folder holds before torch loads.

Example
-------
>>> import json, os, tempfile
>>> folder = tempfile.mkdtemp()
>>> with open(os.path.join(folder, "meta.json"), "w") as f:
...     json.dump({"format": TRANSLATOR}, f)
>>> read_format(folder)
'sense-translator'
>>> FORMATS[read_format(folder)].kind
'a speech translation model'
>>> check_format(folder, EMBEDDING_FORMATS, "sense embed")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
sense.formats.WrongModelError: ...: a speech translation model; sense embed needs a SENSE ...
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

#: The file of an exported folder that names its format.
META_FILE = "meta.json"

SENSE_MODEL = "sense-model"
DUAL_ENCODER = "sense-dual-encoder"
TRANSLATOR = "sense-translator"
ZEROST = "sense-zerost"
SLU_MODEL = "sense-slu-model"
SUMMARIZER = "sense-summarizer"
#: The ``format`` in the ``summary.json`` of a ``sense attention`` output folder.
ATTENTION_OUTPUT = "sense-attention"


@dataclass(frozen=True)
class ModelFormat:
    """One kind of exported folder.

    Attributes
    ----------
    name : str
        The ``format`` in ``meta.json``.
    kind : str
        What the folder holds, for messages (``"a SENSE embedding model"``).
    interface : str
        ``"module:Class"`` of the class that loads it with ``from_hparams``.
    """

    name: str
    kind: str
    interface: str

    def load_interface(self) -> type:
        """The interface class (its module is imported now).

        Example
        -------
        >>> FORMATS[SENSE_MODEL].load_interface().__name__
        'SENSE'
        """
        module, name = self.interface.split(":")
        return getattr(importlib.import_module(module), name)


FORMATS: dict[str, ModelFormat] = {
    f.name: f
    for f in (
        ModelFormat(SENSE_MODEL, "a SENSE embedding model", "sense.inference:SENSE"),
        ModelFormat(
            DUAL_ENCODER, "an LLM dual encoder", "sense.dual_encoder.inference:DualEncoder"
        ),
        ModelFormat(
            TRANSLATOR, "a speech translation model", "sense.translation.inference:Translator"
        ),
        ModelFormat(
            ZEROST, "a ZeroST translation model", "sense.zerost.inference:ZeroSTTranslator"
        ),
        ModelFormat(SLU_MODEL, "an SLU model", "sense.slu.inference:SLU"),
        ModelFormat(SUMMARIZER, "a summarizer", "sense.summarization.inference:Summarizer"),
    )
}
#: Folders that embed speech and text into one space (``sense embed``, ``index``, ``search``).
EMBEDDING_FORMATS = (SENSE_MODEL, DUAL_ENCODER)
#: Folders that translate speech (``sense translate``).
TRANSLATION_FORMATS = (TRANSLATOR, ZEROST)


class ModelFormatError(ValueError):
    """A folder whose ``meta.json`` is damaged or names no known format."""


class WrongModelError(ModelFormatError):
    """A model of another kind than the one a command or caller needs."""


def read_format(folder: str | os.PathLike) -> str | None:
    """The format named in ``folder``'s ``meta.json``; ``None`` without a ``meta.json``.

    Raises
    ------
    ModelFormatError
        ``meta.json`` is not a JSON object with a ``format`` string (the message names it).

    Example
    -------
    >>> import tempfile
    >>> read_format(tempfile.mkdtemp()) is None
    True
    """
    path = os.path.join(os.fspath(folder), META_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ModelFormatError(f"{path}: not readable JSON ({err})") from err
    name = meta.get("format") if isinstance(meta, dict) else None
    if not isinstance(name, str):
        raise ModelFormatError(f'{path}: names no format (no "format" string)')
    return name


def _kinds(names: Sequence[str]) -> str:
    kinds = [FORMATS[n].kind for n in names]
    return kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]


def model_format(folder: str | os.PathLike) -> ModelFormat | None:
    """The :class:`ModelFormat` of ``folder``; ``None`` without a ``meta.json``.

    Raises
    ------
    ModelFormatError
        A damaged ``meta.json``, or a format this version does not know.

    Example
    -------
    >>> import tempfile
    >>> model_format(tempfile.mkdtemp()) is None
    True
    """
    name = read_format(folder)
    if name is None:
        return None
    if name not in FORMATS:
        raise ModelFormatError(
            f"{os.path.join(os.fspath(folder), META_FILE)}: unknown model format {name!r} "
            f"(this version of sense reads {', '.join(sorted(FORMATS))})"
        )
    return FORMATS[name]


def check_format(
    folder: str | os.PathLike, accepted: Sequence[str], needed_by: str
) -> ModelFormat | None:
    """The format of ``folder`` if it is one of ``accepted``; ``None`` without a ``meta.json``.

    Parameters
    ----------
    folder : str or PathLike
        A local model folder.
    accepted : sequence of str
        Format names the caller can use.
    needed_by : str
        Who needs it, for the message (``"sense embed"``).

    Raises
    ------
    WrongModelError
        Naming the kind the folder holds and the kinds ``needed_by`` needs.
    ModelFormatError
        A damaged or unknown ``meta.json``.

    Example
    -------
    >>> import tempfile
    >>> check_format(tempfile.mkdtemp(), [SLU_MODEL], "sense slu") is None
    True
    """
    found = model_format(folder)
    if found is not None and found.name not in accepted:
        raise WrongModelError(
            f"{os.fspath(folder)}: {found.kind}; {needed_by} needs {_kinds(accepted)}"
        )
    return found


def load(
    source: str | os.PathLike,
    accepted: Sequence[str] | None = None,
    default: str | None = None,
    savedir: str | None = None,
    needed_by: str = "the caller",
    **kwargs,
):
    """Load an exported folder or hub id with the interface its ``meta.json`` names.

    Parameters
    ----------
    source : str or PathLike
        A model folder or a hub id.
    accepted : sequence of str, optional
        Formats the caller can use (all by default); another raises :class:`WrongModelError`.
    default : str, optional
        Format of a folder without ``meta.json`` (refused when ``None``).
    savedir : str, optional
        Where a hub model is downloaded.
    needed_by : str
        Who needs one of ``accepted``, for the message (``"sense translate"``).
    **kwargs
        For ``from_hparams`` (``device``, ``precision``, ``overrides``, ...).

    Example
    -------
    >>> import sense
    >>> model = sense.load("path/to/exported-folder", device="cpu")  # doctest: +SKIP
    """
    from sense.inference import resolve_model_dir

    accepted = tuple(accepted or FORMATS)
    folder = resolve_model_dir(os.fspath(source), savedir=savedir)
    found = check_format(folder, accepted, needed_by)
    if found is None:
        if default is None:
            raise ModelFormatError(
                f"{folder}: no {META_FILE}, so not a folder written by a sense export"
            )
        found = FORMATS[default]
    return found.load_interface().from_hparams(source=folder, savedir=savedir, **kwargs)


__all__ = [
    "ATTENTION_OUTPUT",
    "DUAL_ENCODER",
    "EMBEDDING_FORMATS",
    "FORMATS",
    "META_FILE",
    "SENSE_MODEL",
    "SLU_MODEL",
    "SUMMARIZER",
    "TRANSLATION_FORMATS",
    "TRANSLATOR",
    "ZEROST",
    "ModelFormat",
    "ModelFormatError",
    "WrongModelError",
    "check_format",
    "load",
    "model_format",
    "read_format",
]
