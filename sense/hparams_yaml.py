"""The one writer of every export's ``hyperparams.yaml``: HyperPyYAML rendered from data.

An export describes its folder as an ordered mapping of entries; values are
plain scalars, nested mappings, or the HyperPyYAML tags below. The writer
quotes every scalar the same way (:func:`yaml_scalar`), puts comments above
their keys, and adds the two blocks every export shares: ``modules`` (a
reference to each module) and the strict ``pretrainer`` of the trained states.

Example
-------
>>> entries = {
...     "model_dir": PLACEHOLDER,
...     "sample_rate": 16000,
...     "head": New("torch.nn.Linear", {"in_features": 4, "out_features": 2}),
... }
>>> print(render_hparams("# a tiny model", entries, {"sample_rate": "Audio rate."},
...                      modules=["head"], loadables={"head": "head.ckpt"}))
# a tiny model
<BLANKLINE>
model_dir: !PLACEHOLDER
<BLANKLINE>
# Audio rate.
sample_rate: 16000
<BLANKLINE>
head: !new:torch.nn.Linear
    in_features: 4
    out_features: 2
<BLANKLINE>
modules:
    head: !ref <head>
<BLANKLINE>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        head: !ref <head>
    paths:
        head: !ref <model_dir>/head.ckpt
    custom_hooks:
        head: !name:sense.export.load_state_dict_strict
<BLANKLINE>
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

INDENT = "    "
#: The pretrainer hook of every trained state: all keys must match.
STRICT_HOOK = "sense.export.load_state_dict_strict"
PRETRAINER = "speechbrain.utils.parameter_transfer.Pretrainer"


class _Placeholder:
    def __repr__(self) -> str:
        return "PLACEHOLDER"


#: ``!PLACEHOLDER``: filled by ``from_hparams`` (``model_dir``).
PLACEHOLDER = _Placeholder()


@dataclass(frozen=True)
class Ref:
    """``!ref <name>suffix``, e.g. ``Ref("model_dir", "/encoder")``."""

    name: str
    suffix: str = ""


@dataclass(frozen=True)
class Name:
    """``!name:target``: a callable, not called."""

    target: str


@dataclass(frozen=True)
class New:
    """``!new:cls`` with keyword arguments."""

    cls: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def in_folder(path: str) -> Ref:
    """A path inside the model folder: ``!ref <model_dir>/path``.

    Example
    -------
    >>> in_folder("encoder")
    Ref(name='model_dir', suffix='/encoder')
    """
    return Ref("model_dir", f"/{path}")


def yaml_scalar(value: Any) -> str:
    """A scalar as YAML text (JSON strings are valid YAML double-quoted scalars).

    Example
    -------
    >>> yaml_scalar(None), yaml_scalar(True), yaml_scalar(0.5), yaml_scalar("$5 {x}")
    ('null', 'True', '0.5', '"$5 {x}"')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _inline(value: Any) -> str | None:
    """The one-line text of a value, or ``None`` for a block (a mapping or ``New``)."""
    if value is PLACEHOLDER:
        return "!PLACEHOLDER"
    if isinstance(value, Ref):
        return f"!ref <{value.name}>{value.suffix}"
    if isinstance(value, Name):
        return f"!name:{value.target}"
    if isinstance(value, (New, Mapping)):
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    return yaml_scalar(value)


def _entry(key: str, value: Any, depth: int) -> str:
    pad = INDENT * depth
    text = _inline(value)
    if text is not None:
        return f"{pad}{key}: {text}\n"
    head, items = (f" !new:{value.cls}", value.kwargs) if isinstance(value, New) else ("", value)
    return f"{pad}{key}:{head}\n" + "".join(_entry(k, v, depth + 1) for k, v in items.items())


def pretrainer(loadables: Mapping[str, str | tuple[str, str]]) -> New:
    """The ``Pretrainer`` of the trained states: ``{module: file}`` or ``{module: (file, hook)}``.

    The hook defaults to :data:`STRICT_HOOK` (every key must match).

    Example
    -------
    >>> pretrainer({"pooling": "pooling.ckpt"}).kwargs["paths"]
    {'pooling': Ref(name='model_dir', suffix='/pooling.ckpt')}
    """
    specs = {n: (v, STRICT_HOOK) if isinstance(v, str) else v for n, v in loadables.items()}
    return New(
        PRETRAINER,
        {
            "loadables": {name: Ref(name) for name in specs},
            "paths": {name: in_folder(file) for name, (file, _) in specs.items()},
            "custom_hooks": {name: Name(hook) for name, (_, hook) in specs.items()},
        },
    )


def render_hparams(
    header: str,
    entries: Mapping[str, Any],
    comments: Mapping[str, str] | None = None,
    modules: Sequence[str] = (),
    loadables: Mapping[str, str | tuple[str, str]] | None = None,
) -> str:
    """The text of an exported folder's ``hyperparams.yaml``.

    Parameters
    ----------
    header : str
        Comment lines on top (what the folder is, how to load it).
    entries : mapping
        Top-level keys in order: scalars, mappings, :class:`New`, :class:`Ref`,
        :class:`Name` or :data:`PLACEHOLDER`.
    comments : mapping, optional
        ``key -> comment`` written above the key (one ``#`` line per line).
    modules : sequence of str
        Entries listed under ``modules`` (what the interface runs).
    loadables : mapping, optional
        ``module -> file`` (or ``(file, hook)``) of the trained states, for the
        ``pretrainer`` (:func:`pretrainer`).
    """
    comments = comments or {}
    entries = dict(entries)
    if modules:
        entries["modules"] = {name: Ref(name) for name in modules}
    if loadables:
        entries["pretrainer"] = pretrainer(loadables)
    text, previous_block = header.rstrip("\n") + "\n", True
    for key, value in entries.items():
        note = "".join(f"# {line}".rstrip() + "\n" for line in comments.get(key, "").splitlines())
        block = _inline(value) is None
        if note or block or previous_block:  # a blank line sets off comments and blocks
            text += "\n"
        text += note + _entry(key, value, 0)
        previous_block = block
    return text


__all__ = [
    "PLACEHOLDER",
    "Name",
    "New",
    "Ref",
    "in_folder",
    "pretrainer",
    "render_hparams",
    "yaml_scalar",
]
