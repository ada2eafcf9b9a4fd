"""Checks a recipe makes in its first seconds, before it loads a model or trains.

A run that can only fail (an output folder it cannot write, a data folder
missing what preparation needs, an evaluation model it cannot load) should
fail at once with one line naming the problem, not after hours of training.

HyperPyYAML builds every ``!new:`` object (the speech encoder, the decoder)
while it loads the YAML, so a recipe that loads its hparams first has
downloaded its models before it looks at its data. :func:`peek_hparams`
reads the same YAML, overrides and ``!ref`` / ``!include:`` resolved, but
builds nothing: every ``!new:``, ``!apply:``, ``!name:`` and ``!module:`` node
stays a :class:`Deferred`, which :func:`materialize` builds on demand (a
recipe builds the cheap ones it needs before the full load, such as a
teacher's specification). The recipe checks and prepares its data from this
*plan*, and loads the full hparams (the models) only after that, and not at
all with ``--prepare_only``.

Example
-------
>>> plan = peek_yaml("folder: out\\nmodel: !new:collections.Counter {a: 1}\\n")
>>> plan["folder"], type(plan["model"]).__name__
('out', 'Deferred')
>>> materialize(plan["model"])
Counter({'a': 1})
"""

from __future__ import annotations

import functools
import io
import os
import pydoc
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: Keys of recipe hparams naming something a run writes (a folder or a file).
OUTPUT_KEYS = (
    "output_folder",
    "save_folder",
    "export_folder",
    "prepared_folder",
    "results_folder",
    "teacher_cache_folder",
    "embedding_cache_folder",
    "token_cache_folder",
    "cache_folder",
    "europarl_prepared",
    "centroids_file",
    "train_log",
    "predictions_file",
    "bleu_table",
    "table_file",
    "results_table",
    "table1",
    "table2",
)
#: YAML tags whose objects the plan leaves unbuilt (HyperPyYAML's shortcuts).
DEFERRED_KINDS = ("new", "name", "apply", "module")
#: HyperPyYAML's implicit tuple: a scalar ``(a, b)``.
TUPLE_PATTERN = re.compile(r"^\(.*\)$")
#: Prefix of the keys HyperPyYAML drops after loading (side-effect hooks such as the seed).
HOOK_PREFIX = "__"


class PreflightError(ValueError):
    """A run cannot succeed: one line naming the setting or path and what to change."""


class Deferred:
    """A ``!new:`` / ``!apply:`` / ``!name:`` / ``!module:`` node of a YAML, not built yet.

    Parameters
    ----------
    kind : str
        One of :data:`DEFERRED_KINDS`.
    target : str
        The dotted name of the class, function or module.
    args, kwargs
        The node's arguments (may hold other :class:`Deferred` nodes).

    Example
    -------
    >>> node = Deferred("apply", "os.path.join", ["a", "b"], {})
    >>> node.build(), node.build() is node.build()  # built once, as an alias is
    ('a/b', True)
    """

    def __init__(self, kind: str, target: str, args: list, kwargs: dict):
        self.kind = kind
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self._built = None
        self._done = False

    def __repr__(self) -> str:
        return f"Deferred(!{self.kind}:{self.target})"

    def build(self) -> Any:
        """The object HyperPyYAML would have made of this node (built once)."""
        if not self._done:
            self._built = self._make()
            self._done = True
        return self._built

    def _make(self) -> Any:
        target = pydoc.locate(self.target)
        if target is None:
            raise ImportError(f"!{self.kind}:{self.target}: no such {self.kind} target")
        if self.kind == "module":
            return target
        args, kwargs = materialize(self.args), materialize(self.kwargs)
        if self.kind == "name":
            return functools.partial(target, *args, **kwargs) if args or kwargs else target
        return target(*args, **kwargs)


def materialize(value: Any) -> Any:
    """``value`` with every :class:`Deferred` inside it built (dicts and lists walked).

    Example
    -------
    >>> materialize({"n": [Deferred("apply", "len", [[1, 2]], {})]})
    {'n': [2]}
    """
    if isinstance(value, Deferred):
        return value.build()
    if isinstance(value, Mapping):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(materialize(v) for v in value)
    return value


class Plan(dict):
    """A recipe's hparams with no object built; ``hooks``: its ``__`` keys (the seed)."""

    hooks: dict

    def run_hooks(self) -> None:
        """Run the ``__`` hooks (``__set_seed``), as loading the full hparams does."""
        for value in self.hooks.values():
            materialize(value)


def _plan_loader():
    import yaml

    class PlanLoader(yaml.SafeLoader):
        """Reads resolved HyperPyYAML, leaving every object node a :class:`Deferred`."""

    def deferred(kind):
        def construct(loader, target, node):
            args, kwargs = [], {}
            if isinstance(node, yaml.MappingNode):
                kwargs = loader.construct_mapping(node, deep=True)
            elif isinstance(node, yaml.SequenceNode):
                args = loader.construct_sequence(node, deep=True)
            return Deferred(kind, target, args, kwargs)

        return construct

    def construct_tuple(loader, node):
        return tuple(yaml.safe_load("[" + loader.construct_scalar(node)[1:-1] + "]"))

    for kind in DEFERRED_KINDS:
        PlanLoader.add_multi_constructor(f"!{kind}:", deferred(kind))
    PlanLoader.add_constructor("!tuple", construct_tuple)
    PlanLoader.add_implicit_resolver("!tuple", TUPLE_PATTERN, ["("])
    return PlanLoader


def peek_yaml(stream, overrides: str | Mapping | None = None) -> Plan:
    """The :class:`Plan` of a HyperPyYAML text or open file (see :func:`peek_hparams`)."""
    import yaml
    from hyperpyyaml import resolve_references

    if isinstance(stream, str):
        stream = io.StringIO(stream)
    resolved = resolve_references(stream, overrides or None)
    tree = yaml.load(resolved, Loader=_plan_loader()) or {}
    plan = Plan({k: v for k, v in tree.items() if not str(k).startswith(HOOK_PREFIX)})
    plan.hooks = {k: v for k, v in tree.items() if str(k).startswith(HOOK_PREFIX)}
    return plan


def peek_hparams(hparams_file: str, overrides: str | Mapping | None = None) -> Plan:
    """A recipe's hparams with its overrides, references resolved, and **no object built**.

    Plain values (folders, sizes, model sources) are as ``load_hyperpyyaml``
    gives them; every object node is a :class:`Deferred`. A ``!PLACEHOLDER``
    left unset is an error naming the key, as in the full load.
    """
    with open(hparams_file, encoding="utf-8") as stream:
        return peek_yaml(stream, overrides)


def nearest_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists.

    Example
    -------
    >>> nearest_existing("/tmp/no/such/folder/here")
    '/tmp'
    """
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_writable(path: str, key: str) -> None:
    """Raise :class:`PreflightError` unless ``path`` (a folder or a file) can be written.

    An existing path must be writable; a missing one must be creatable: its
    nearest existing ancestor is a folder this process may write in.

    Example
    -------
    >>> import tempfile
    >>> check_writable(os.path.join(tempfile.mkdtemp(), "a", "b"), "output_folder")
    >>> check_writable("/proc/version/out", "output_folder")
    Traceback (most recent call last):
    ...
    sense.preflight.PreflightError: output_folder /proc/version/out: cannot be written (/proc/version is a file, not a folder)
    """
    existing = nearest_existing(path)
    if existing != os.path.abspath(path) and not os.path.isdir(existing):
        raise PreflightError(
            f"{key} {path}: cannot be written ({existing} is a file, not a folder)"
        )
    if not os.access(existing, os.W_OK):
        raise PreflightError(f"{key} {path}: cannot be written (no write permission on {existing})")


def check_outputs(plan: Mapping, keys: Iterable[str] = OUTPUT_KEYS) -> None:
    """:func:`check_writable` on each of ``keys`` the plan sets to a path.

    Example
    -------
    >>> check_outputs({"output_folder": "/tmp/out", "export_folder": None})
    """
    for key in keys:
        value = plan.get(key)
        if isinstance(value, (str, os.PathLike)) and str(value):
            check_writable(os.fspath(value), key)


def require_keys(plan: Mapping, required: Iterable[str], recipe: str, source: str = "") -> None:
    """Raise :class:`PreflightError` naming every key of ``required`` the hparams lack.

    A library entry point states the keys a recipe's YAML must set as a
    tuple; this checks them in the first second, before anything is built.

    Example
    -------
    >>> require_keys({"train_csv": "t.csv"}, ("train_csv", "encoder"), "the SLU recipe", "x.yaml")
    Traceback (most recent call last):
    ...
    sense.preflight.PreflightError: x.yaml: the SLU recipe needs encoder, which the hparams do not set
    """
    missing = [key for key in required if key not in plan]
    if missing:
        where = f"{source}: " if source else ""
        raise PreflightError(
            f"{where}{recipe} needs {', '.join(missing)}, which the hparams do not set"
        )


def require_files(plan: Mapping, keys: Iterable[str], hint: str = "") -> None:
    """Raise :class:`PreflightError` naming every key of ``keys`` whose file is missing.

    For manifests a run reads without preparing them (``skip_prep``).

    Example
    -------
    >>> require_files({"train_csv": "/no/train.csv"}, ["train_csv"], "run the preparation")
    Traceback (most recent call last):
    ...
    sense.preflight.PreflightError: missing: train_csv /no/train.csv; run the preparation
    """
    missing = [f"{key} {plan[key]}" for key in keys if not os.path.isfile(str(plan[key]))]
    if missing:
        raise PreflightError("missing: " + ", ".join(missing) + (f"; {hint}" if hint else ""))


def check_model_loadable(source: str, key: str, hint: str) -> None:
    """Raise :class:`PreflightError` unless ``source`` resolves to a model config.

    ``source`` is a local folder (it must hold ``config.json``) or a hub id
    (its ``config.json`` must load: from the hub, or from the local cache
    when offline). The weights are not read: this catches a model that
    cannot be reached or is not cached, in seconds.

    Parameters
    ----------
    source : str
        Hub id or local folder.
    key : str
        The hparams key that names it (for the message).
    hint : str
        What to change (for the message).
    """
    from sense.io import is_hub_id

    if os.path.isdir(source):
        if not os.path.isfile(os.path.join(source, "config.json")):
            raise PreflightError(f"{key}: {source} has no config.json (not a model folder); {hint}")
        return
    if not is_hub_id(source):
        raise PreflightError(f"{key}: {source!r} is neither a folder nor a hub id; {hint}")
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
        where = "offline and not in the local cache" if offline else "not reachable on the hub"
        raise PreflightError(
            f"{key}: the model {source!r} cannot be loaded ({where}); {hint}"
        ) from err


def run_main(main: Callable[[list[str]], Any], argv: list[str] | None = None) -> Any:
    """Run a recipe's ``main(argv)``; a :class:`PreflightError` exits with its one line.

    Example
    -------
    >>> def main(argv):
    ...     raise PreflightError("bertscore.model: ... ; set bertscore: null")
    >>> run_main(main, [])  # doctest: +SKIP
    train.py: error: bertscore.model: ... ; set bertscore: null
    """
    try:
        return main(sys.argv[1:] if argv is None else argv)
    except PreflightError as err:
        sys.exit(f"{os.path.basename(sys.argv[0])}: error: {err}")
