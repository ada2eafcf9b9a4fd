"""Which code a model folder's ``hyperparams.yaml`` may run when it is loaded.

HyperPyYAML builds objects from tags: ``!new:pkg.Class`` calls a class,
``!name:``, ``!apply:``, ``!applyref:`` and ``!module:`` import and call any
importable Python, ``!include:`` reads another file, and the PyYAML loader
underneath honours ``!!python/...`` tags. A downloaded model folder is
someone else's file, so, like ``transformers`` with ``trust_remote_code``,
:func:`check_hparams` lets a folder name only the constructors our exports
use (:data:`TRUSTED_NEW`, :data:`TRUSTED_NAME`, ``torch.nn`` modules) and
refuses anything else *before* any of it is imported or called. Weights are
read with ``weights_only=True`` either way.

Example
-------
>>> check_hparams_text("encoder: !new:sense.nnet.pooling.AttentivePooling\\n  input_dim: 8\\n")
>>> try:
...     check_hparams_text("x: !apply:os.system [echo hi]\\n")
... except UntrustedCodeError as err:
...     print(str(err).split(";")[0])
<hparams>: line 1: '!apply:os.system' is not one of the constructors a sense model folder may call
"""

from __future__ import annotations

import os
import re

__all__ = [
    "TRUSTED_NAME",
    "TRUSTED_NEW",
    "UntrustedCodeError",
    "check_hparams",
    "check_hparams_text",
]

#: Classes a model folder may build with ``!new:``.
TRUSTED_NEW = frozenset(
    {
        "sense.dual_encoder.model.LLMEncoder",
        "sense.dual_encoder.tokens.AudioTokenizer",
        "sense.lobes.options.EncoderOptions",
        "sense.lobes.speech.HFSpeechEncoder",
        "sense.lobes.text.TeacherSpec",
        "sense.nnet.heads.CTCProbe",
        "sense.nnet.pooling.AttentivePooling",
        "sense.summarization.model.EmbeddingProjection",
        "sense.summarization.model.Seq2SeqSummarizer",
        "sense.translation.model.FrameProjection",
        "sense.translation.model.Seq2SeqDecoder",
        # the same classes, as folders exported before translation/decoder.py was
        # renamed model.py name them (sense/translation/decoder.py re-exports them)
        "sense.translation.decoder.FrameProjection",
        "sense.translation.decoder.Seq2SeqDecoder",
        "sense.zerost.qformer.QLite",
        "sense.zerost.qformer.QNLLB",
        "sense.zerost.qformer.QSimple",
        "sense.zerost.speech.AdaptedSpeechEncoder",
        "speechbrain.utils.parameter_transfer.Pretrainer",
    }
)
#: Functions a model folder may name with ``!name:`` (a partial, called later).
TRUSTED_NAME = frozenset(
    {
        "sense.export.load_state_dict_strict",
        "sense.inference.build_teacher",  # the teacher of format-1 folders
        "sense.zerost.speech.load_trained_parts",
    }
)
#: Tags that only refer to other values of the same file.
DATA_TAGS = frozenset({"!ref", "!copy", "!PLACEHOLDER", "!tuple"})
#: Standard YAML types (``tag:yaml.org,2002:<type>``).
YAML_CORE_TYPES = frozenset({"str", "int", "float", "bool", "null", "map", "seq"})
YAML_CORE_PREFIX = "tag:yaml.org,2002:"
CALL_TAGS = ("!new:", "!name:", "!apply:", "!applyref:", "!module:")
# ``<name.attr>`` inside a !ref: HyperPyYAML turns it into ``getattr`` calls.
ATTRIBUTE_REF = re.compile(r"<[^<>]*\.[^<>]*>")
REMEDY = (
    "load it with trust_remote_code=True (sense ... --trust-remote-code) only if you trust "
    "its author"
)


class UntrustedCodeError(ValueError):
    """A model folder's ``hyperparams.yaml`` would run code outside the allow-list."""


def _is_torch_module(target: str) -> bool:
    """``torch.nn.<Name>`` naming an ``nn.Module`` class (no import beyond ``torch.nn``)."""
    prefix = "torch.nn."
    name = target[len(prefix) :]
    if not target.startswith(prefix) or not name.isidentifier():
        return False
    import torch

    cls = getattr(torch.nn, name, None)
    return isinstance(cls, type) and issubclass(cls, torch.nn.Module)


def _tag_problem(tag: str, value) -> str | None:
    """Why a node with this tag (and scalar value) may not be loaded untrusted, or None."""
    if tag.startswith(YAML_CORE_PREFIX):
        kind = tag[len(YAML_CORE_PREFIX) :]
        return None if kind in YAML_CORE_TYPES else f"the YAML tag {tag!r} can run code"
    if tag in DATA_TAGS:
        if not isinstance(value, str):
            return None
        if tag in ("!ref", "!copy") and ATTRIBUTE_REF.search(value):
            return f"the attribute reference {tag} {value!r} is not allowed"
        if tag == "!tuple" and "!" in value:
            return f"the tuple {value!r} holds a YAML tag"
        return None
    for prefix in CALL_TAGS:
        if tag.startswith(prefix):
            target = tag[len(prefix) :]
            trusted = (
                prefix == "!new:" and (target in TRUSTED_NEW or _is_torch_module(target))
            ) or (prefix == "!name:" and target in TRUSTED_NAME)
            if trusted:
                return None
            return f"{tag!r} is not one of the constructors a sense model folder may call"
    if tag.startswith("!include:"):
        return f"{tag!r} reads another file"
    return f"the tag {tag!r} is not a HyperPyYAML tag of a sense model folder"


def _walk(node):
    """Every node of a composed YAML tree (each once, aliases included)."""
    seen, stack = set(), [node]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        value = node.value
        if isinstance(value, list):
            for item in value:
                stack.extend(item if isinstance(item, tuple) else (item,))


def check_hparams_text(text: str, name: str = "<hparams>", trust_remote_code: bool = False) -> None:
    """Refuse a HyperPyYAML text that would run code outside the allow-list.

    The text is only composed (parsed into nodes), never constructed, so
    nothing it names is imported or called here.

    Parameters
    ----------
    text : str
        The YAML.
    name : str
        The file, for the message.
    trust_remote_code : bool
        Skip the check (the folder's author is trusted).

    Raises
    ------
    UntrustedCodeError
        Naming the file, the line and the tag.
    """
    if trust_remote_code:
        return
    import ruamel.yaml

    try:
        root = ruamel.yaml.YAML(typ="rt").compose(text)
    except ruamel.yaml.YAMLError as err:
        raise ValueError(f"{name}: not valid YAML ({err})") from err
    for node in _walk(root):
        tag = getattr(node.tag, "value", node.tag) or ""
        value = node.value if isinstance(node.value, str) else None
        problem = _tag_problem(tag, value)
        if problem is None and value is not None and value.startswith("(") and "!" in value:
            problem = f"the tuple {value!r} holds a YAML tag"  # HyperPyYAML's implicit !tuple
        if problem is not None:
            line = node.start_mark.line + 1
            raise UntrustedCodeError(f"{name}: line {line}: {problem}; {REMEDY}")


def check_hparams(path: str | os.PathLike, trust_remote_code: bool = False) -> None:
    """:func:`check_hparams_text` on a file.

    Raises
    ------
    UntrustedCodeError
        The file names code outside the allow-list.
    ValueError
        The file is not valid YAML or not UTF-8.
    """
    if trust_remote_code:
        return
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from err
    check_hparams_text(text, name=path)
