"""Import SpeechBrain SENSE and SAMU checkpoints as ``sense`` model folders.

SpeechBrain's SENSE recipe (``recipes/CommonVoice/SENSE``) and SAMU recipe
(``recipes/IWSLT22_lowresource``) leave a run folder::

    <output_folder>/
      hyperparams.yaml            the recipe's hparams, references resolved
      save/CKPT+<name>/           one checkpoint of the Checkpointer
        CKPT.yaml                 meta (loss, epoch, unixtime)
        wav2vec2.ckpt             state dict of the speech-encoder wrapper
                                  (W2VBert or Wav2Vec2): the transformers
                                  model's weights under "model."
        model.ckpt                state dict of the head, a ModuleList:
                                  "0.attn_pooling_w.{weight,bias}" (AttentionPooling),
                                  then an optional projection and activation
        lr_annealing_*.ckpt  counter.ckpt  (LaBSE.ckpt)   not needed here

:func:`import_speechbrain` reads the hparams without building anything (the
classes, the order of the head's modules, the base model's hub id, the
teacher), loads the two state dicts, checks every shape against the base
model's config, and writes a folder that :meth:`sense.inference.SENSE.from_hparams`
loads, with :func:`sense.export.export_model`. The base model (a hub id or a
local folder; only its ``config.json`` and ``preprocessor_config.json`` are
read) gives the encoder's architecture; the weights all come from the
checkpoint.

The head maps onto :class:`sense.nnet.pooling.AttentivePooling`:
``attn_pooling_w`` becomes ``attention``; a ``torch.nn.Linear`` or
``speechbrain.nnet.linear.Linear`` after it becomes ``projection``; a
``torch.nn.Tanh`` (``ReLU``, ``GELU``) after that becomes ``activation``. An
activation applied in the recipe's ``train.py`` rather than listed in the
head cannot be read from the hparams: pass it as ``activation``.

For one utterance the imported model gives SpeechBrain's embedding. Two
differences remain on other inputs (see the README): SpeechBrain's
``AttentionPooling`` gives padded frames weight, so its embedding of an
utterance depends on the batch, where ours does not; its w2v-BERT front-end
is transformers' numpy feature extractor, ours the same computation in
torch (:class:`sense.features.W2VBertFbank`), equal to about 1e-4.

Example
-------
>>> import tempfile, os
>>> from sense.testing.speechbrain import build_speechbrain_run
>>> run = build_speechbrain_run(tempfile.mkdtemp())
>>> folder = import_speechbrain(run.checkpoint, os.path.join(tempfile.mkdtemp(), "m"))
>>> sorted(os.listdir(folder))
['encoder', 'hyperparams.yaml', 'meta.json', 'pooling.ckpt']
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
CKPT_PREFIX = "CKPT+"
CKPT_META = "CKPT.yaml"
PARAM_EXT = ".ckpt"
# SpeechBrain's transformers wrappers keep the transformers model as ``.model``.
ENCODER_PREFIX = "model."
POOLING_WEIGHTS = "attn_pooling_w."
CHECKPOINTER = "speechbrain.utils.checkpoints.Checkpointer"
POOLING_CLASS = "speechbrain.nnet.pooling.AttentionPooling"
# Speech-encoder wrappers (class name, under speechbrain.) -> transformers model_type.
SPEECH_WRAPPERS = {
    "W2VBert": "wav2vec2-bert",
    "Wav2Vec2": "wav2vec2",
    "HuggingFaceWav2Vec2": "wav2vec2",
}
# Linear layers -> prefix of their weight and bias in the state dict.
LINEAR_CLASSES = {
    "torch.nn.Linear": "",
    "torch.nn.modules.linear.Linear": "",
    "speechbrain.nnet.linear.Linear": "w.",
}
ACTIVATION_CLASSES = {"torch.nn.Tanh": "tanh", "torch.nn.ReLU": "relu", "torch.nn.GELU": "gelu"}
CONTAINERS = ("torch.nn.ModuleList", "torch.nn.Sequential")
# Teacher wrappers (class name, under speechbrain.) -> token pooling of the teacher.
TEACHER_WRAPPERS = {"BGEM3SentenceEmbeddings": "cls", "LaBSE": "pooler"}
#: ``activation`` value that keeps what the hparams say.
FROM_RECIPE = "recipe"
_UNSET = "unset-by-sense-import"


class CheckpointImportError(ValueError):
    """A checkpoint, hparams file or base model that cannot be imported (the message says why)."""


@dataclass
class HeadLayout:
    """Where the pooling head's parts are in the head's state dict.

    Attributes
    ----------
    recoverable : str
        Name of the head in the checkpointer (``"model"``: ``model.ckpt``).
    pooling : list of str
        State-dict prefixes of the ``AttentionPooling`` (more than one when the
        recipe lists the same module twice, as SpeechBrain's SAMU recipe does).
    projection : list of str
        Prefixes of the projection's ``weight`` and ``bias`` (empty: none).
    activation : str or None
        ``"tanh"``, ``"relu"``, ``"gelu"`` or ``None``.
    """

    recoverable: str
    pooling: list[str]
    projection: list[str] = field(default_factory=list)
    activation: str | None = None


@dataclass
class RecipeLayout:
    """What a SpeechBrain SENSE/SAMU hparams file says about its checkpoint.

    Attributes
    ----------
    path : str
        The hparams file.
    encoder : str
        Name of the speech encoder in the checkpointer (``"wav2vec2"``).
    wrapper : str
        Its SpeechBrain class (``speechbrain.integrations.huggingface.w2v_bert.W2VBert``).
    model_type : str
        The transformers ``model_type`` the wrapper holds.
    base : str or None
        The wrapper's ``source``: hub id or folder of the base model.
    head : HeadLayout
    teacher : str or None
        ``source`` of the teacher wrapper (BGE-M3, LaBSE), if the hparams have one.
    teacher_pooling : str or None
        Its token pooling (``"cls"`` for BGE-M3, ``"pooler"`` for LaBSE).
    teacher_trained : bool
        The teacher was fine-tuned with the student (not frozen).
    """

    path: str
    encoder: str
    wrapper: str
    model_type: str
    base: str | None
    head: HeadLayout
    teacher: str | None = None
    teacher_pooling: str | None = None
    teacher_trained: bool = False


# ---------------------------------------------------------------------------
# Reading the hparams file (no object is built)
# ---------------------------------------------------------------------------


def _class(node) -> str | None:
    """``"pkg.mod.Class"`` of a ``!new:pkg.mod.Class`` node, else ``None``."""
    tag = getattr(getattr(node, "tag", None), "value", None)
    if isinstance(tag, str) and tag.startswith("!new:"):
        return tag[len("!new:") :]
    return None


def _arg(node, name: str, position: int | None = None, default=None):
    """A keyword (mapping node) or positional (sequence node) argument of a ``!new:`` node."""
    if isinstance(node, dict):
        return node.get(name, default)
    if isinstance(node, list) and position is not None and position < len(node):
        return node[position]
    return default


def _placeholders(node, overrides: dict) -> dict:
    """Overrides for every ``!PLACEHOLDER`` under ``node`` (needed to resolve references)."""
    if isinstance(node, dict):
        for key, value in node.items():
            tag = getattr(getattr(value, "tag", None), "value", None)
            if tag == "!PLACEHOLDER":
                overrides[key] = _UNSET
            elif isinstance(value, dict):
                nested = _placeholders(value, {})
                if nested:
                    overrides[key] = nested
    return overrides


def _load_yaml(path: str):
    """The hparams file with ``!ref`` resolved, as ruamel nodes that keep their tags."""
    from hyperpyyaml import resolve_references
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="rt")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.load(f)
        if not isinstance(raw, dict):
            raise CheckpointImportError(f"{path}: not a SpeechBrain hparams file (no mapping)")
        # The recipe's own file has references and placeholders; the
        # hyperparams.yaml of a run has them resolved already.
        with open(path, encoding="utf-8") as f:
            resolved = resolve_references(f, _placeholders(raw, {})).getvalue()
        return yaml.load(resolved)
    except (YAMLError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, CheckpointImportError):
            raise
        raise CheckpointImportError(f"{path}: cannot read this hparams file ({err})") from err
    except UnicodeDecodeError as err:
        raise CheckpointImportError(f"{path}: not a text file ({err})") from err


def _children(node) -> list:
    """Modules inside a ``ModuleList`` or ``Sequential`` node, in order."""
    if _class(node) == "torch.nn.ModuleList":  # ModuleList(modules)
        return list(_arg(node, "modules", 0, None) or [])
    return list(node) if isinstance(node, list) else []  # Sequential(*modules)


def _members(node, prefix: str = "") -> list[tuple[str, object]]:
    """``(state-dict prefix, node)`` of every leaf module under ``node``."""
    if _class(node) in CONTAINERS:
        found = []
        for index, child in enumerate(_children(node)):
            found.extend(_members(child, f"{prefix}{index}."))
        return found
    return [(prefix, node)]


def _head_layout(name: str, node, path: str) -> HeadLayout | None:
    """The pooling head in recoverable ``name``, or ``None`` when it holds no pooling."""
    members = _members(node)
    if not any(_class(n) == POOLING_CLASS for _, n in members):
        return None
    unique: list[tuple[object, list[str]]] = []
    for prefix, member in members:
        for known, prefixes in unique:
            if known is member:  # the same module listed again (a YAML alias)
                prefixes.append(prefix)
                break
        else:
            unique.append((member, [prefix]))
    stages = ("pooling", "projection", "activation")
    head = HeadLayout(recoverable=name, pooling=[])
    last = -1
    for member, prefixes in unique:
        cls = _class(member)
        if cls == POOLING_CLASS:
            stage, head.pooling = 0, prefixes
        elif cls in LINEAR_CLASSES:
            stage, head.projection = 1, [p + LINEAR_CLASSES[cls] for p in prefixes]
        elif cls in ACTIVATION_CLASSES:
            stage, head.activation = 2, ACTIVATION_CLASSES[cls]
        else:
            raise CheckpointImportError(
                f"{path}: the head {name!r} holds a {cls or 'module'} that sense cannot map "
                f"(it maps AttentionPooling, then a Linear projection, then "
                f"{'/'.join(ACTIVATION_CLASSES.values())})"
            )
        if stage <= last:
            raise CheckpointImportError(
                f"{path}: the head {name!r} has its {stages[stage]} after its {stages[last]}; "
                "sense applies pooling, projection, activation in that order"
            )
        last = stage
    return head


def read_recipe(path: str | os.PathLike) -> RecipeLayout:
    """Read what a SpeechBrain SENSE/SAMU hparams file says about its checkpoint.

    Parameters
    ----------
    path : str or os.PathLike
        The ``hyperparams.yaml`` of a run, or the recipe's own file
        (``train_sense.yaml``, ``train_samu.yaml``); nothing is built.

    Raises
    ------
    CheckpointImportError
        Not such a file: no checkpointer, no speech encoder or no
        ``AttentionPooling`` among its recoverables, or settings sense cannot
        reproduce (``output_norm``, ``output_all_hiddens``).

    Example
    -------
    >>> import tempfile
    >>> from sense.testing.speechbrain import build_speechbrain_run
    >>> layout = read_recipe(build_speechbrain_run(tempfile.mkdtemp(), "samu").recipe)
    >>> layout.encoder, layout.model_type, layout.head.pooling, layout.teacher_pooling
    ('wav2vec2', 'wav2vec2', ['0.', '1.'], 'pooler')
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointImportError(f"{path}: no such hparams file")
    tree = _load_yaml(path)
    checkpointer = next((v for v in tree.values() if _class(v) == CHECKPOINTER), None)
    recoverables = _arg(checkpointer, "recoverables", 1) if checkpointer is not None else None
    if not isinstance(recoverables, dict):
        raise CheckpointImportError(
            f"{path}: no {CHECKPOINTER} with recoverables; give the recipe's hparams file "
            "(its train_sense.yaml, or the hyperparams.yaml of the run)"
        )

    encoders = []
    for name, node in recoverables.items():
        cls = _class(node) or ""
        if cls.startswith("speechbrain.") and cls.rsplit(".", 1)[-1] in SPEECH_WRAPPERS:
            encoders.append((name, cls, node))
    if len(encoders) != 1:
        found = ", ".join(name for name, _, _ in encoders) or "none"
        raise CheckpointImportError(
            f"{path}: need exactly one speech encoder ({', '.join(SPEECH_WRAPPERS)}) among the "
            f"checkpointer's recoverables, found {found}"
        )
    name, wrapper, node = encoders[0]
    for option in ("output_norm", "output_all_hiddens"):
        if _arg(node, option):
            raise CheckpointImportError(
                f"{path}: the encoder {name!r} has {option}: True, which sense does not reproduce"
            )
    base = _arg(node, "source", 0)

    heads = [h for n, v in recoverables.items() if (h := _head_layout(n, v, path)) is not None]
    if not heads:
        raise CheckpointImportError(
            f"{path}: no {POOLING_CLASS} among the checkpointer's recoverables "
            f"({', '.join(recoverables)}): not a SENSE or SAMU recipe"
        )
    if len(heads) > 1:
        raise CheckpointImportError(
            f"{path}: the pooling is saved in several recoverables "
            f"({', '.join(h.recoverable for h in heads)}); sense cannot tell which one was used"
        )
    layout = RecipeLayout(
        path=path,
        encoder=name,
        wrapper=wrapper,
        model_type=SPEECH_WRAPPERS[wrapper.rsplit(".", 1)[-1]],
        base=str(base) if base is not None else None,
        head=heads[0],
    )
    for value in tree.values():
        cls = _class(value) or ""
        kind = cls.rsplit(".", 1)[-1]
        if cls.startswith("speechbrain.") and kind in TEACHER_WRAPPERS:
            layout.teacher = str(_arg(value, "source", 0))
            layout.teacher_pooling = TEACHER_WRAPPERS[kind]
            in_checkpoint = any(v is value for v in recoverables.values())
            layout.teacher_trained = in_checkpoint and not _arg(value, "freeze", 2, True)
            break
    return layout


# ---------------------------------------------------------------------------
# Finding and reading the checkpoint
# ---------------------------------------------------------------------------


def _checkpoint_summary(folder: pathlib.Path) -> str:
    """``CKPT+name (loss=..., epoch=...)`` from a checkpoint's ``CKPT.yaml``."""
    import yaml

    try:
        meta = yaml.safe_load((folder / CKPT_META).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        meta = {}
    shown = ", ".join(f"{k}={meta[k]}" for k in ("loss", "epoch") if k in meta)
    return f"{folder.name} ({shown})" if shown else folder.name


def find_checkpoint(checkpoint) -> tuple[pathlib.Path, dict[str, pathlib.Path]]:
    """The checkpoint folder and its parameter files by recoverable name.

    Parameters
    ----------
    checkpoint : str, os.PathLike or a sequence of them
        A ``CKPT+...`` folder; a ``save`` folder holding exactly one; or the
        ``.ckpt`` files themselves (each named after its recoverable, as the
        Checkpointer names them).

    Raises
    ------
    CheckpointImportError
        Missing paths, a folder that holds no checkpoint or several, files
        that are not ``.ckpt`` files.
    """
    paths = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else list(checkpoint)
    if not paths:
        raise CheckpointImportError("no checkpoint given")
    paths = [pathlib.Path(os.path.expanduser(os.fspath(p))) for p in paths]
    for path in paths:
        if not path.exists():
            raise CheckpointImportError(f"{path}: no such checkpoint folder or file")
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        files = {p.stem: p for p in sorted(folder.glob(f"*{PARAM_EXT}")) if p.is_file()}
        if files or (folder / CKPT_META).is_file():
            return folder, files
        inner = sorted(
            p
            for p in folder.iterdir()
            if p.name.startswith(CKPT_PREFIX) and (p / CKPT_META).is_file()
        )
        if len(inner) == 1:
            logger.info("importing the only checkpoint of %s: %s", folder, inner[0].name)
            return find_checkpoint(inner[0])
        if inner:
            listing = "; ".join(_checkpoint_summary(p) for p in inner)
            raise CheckpointImportError(
                f"{folder}: holds {len(inner)} checkpoints, give the one to import: {listing}"
            )
        raise CheckpointImportError(
            f"{folder}: not a SpeechBrain checkpoint (no {CKPT_META}, no *{PARAM_EXT} files, "
            f"no {CKPT_PREFIX}* folders)"
        )
    files = {}
    for path in paths:
        if path.is_dir() or path.suffix != PARAM_EXT:
            raise CheckpointImportError(
                f"{path}: give one {CKPT_PREFIX}... folder, or its {PARAM_EXT} files"
            )
        if path.stem in files:
            raise CheckpointImportError(f"{path}: two files for the recoverable {path.stem!r}")
        files[path.stem] = path
    parents = {p.parent for p in files.values()}
    return (parents.pop() if len(parents) == 1 else paths[0].parent), files


def find_hparams(folder: pathlib.Path) -> pathlib.Path:
    """The run's ``hyperparams.yaml`` in or above a checkpoint folder (up to the run folder)."""
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / HPARAMS_FILE).is_file():
            return candidate / HPARAMS_FILE
    raise CheckpointImportError(
        f"{folder}: no {HPARAMS_FILE} in this folder or the two above it; give the recipe's "
        "hparams file (the run's hyperparams.yaml, or train_sense.yaml) with --hparams"
    )


def load_state(path: pathlib.Path) -> dict[str, torch.Tensor]:
    """A state dict saved by SpeechBrain's Checkpointer, with an error naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch.load raises many types on bad files
        raise CheckpointImportError(f"{path}: not a readable checkpoint file ({err})") from err
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointImportError(f"{path}: not a state dict of tensors")
    return state


# ---------------------------------------------------------------------------
# Mapping the weights
# ---------------------------------------------------------------------------


def _shape(t) -> list[int]:
    return list(t.shape)


def _match_state(model: torch.nn.Module, state: dict, path, base: str) -> None:
    """Fail unless ``state`` holds exactly ``model``'s parameters, shape for shape."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if not (missing or extra or wrong):
        return
    problems = []
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} tensor(s) differ in shape (e.g. {k}: {_shape(state[k])} in the "
            f"checkpoint, {_shape(expected[k])} in the base)"
        )
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} not in the base (e.g. {extra[0]})")
    raise CheckpointImportError(
        f"{path}: does not match the base model {base!r}: {'; '.join(problems)}. "
        "Give the model the recipe fine-tuned with --base"
    )


def _encoder_state(path: pathlib.Path) -> dict[str, torch.Tensor]:
    """The transformers model's weights from a SpeechBrain wrapper's state dict."""
    state = load_state(path)
    inner = {k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    if not inner or len(inner) != len(state):
        raise CheckpointImportError(
            f"{path}: not the state dict of a SpeechBrain transformers wrapper "
            f"(its keys should all start with {ENCODER_PREFIX!r})"
        )
    return inner


def _take(state: dict, prefix: str, names: Sequence[str], path) -> dict[str, torch.Tensor]:
    tensors = {}
    for name in names:
        if prefix + name not in state:
            raise CheckpointImportError(f"{path}: no {prefix + name!r} in the head's state dict")
        tensors[name] = state[prefix + name]
    return tensors


def _head_weights(head: HeadLayout, state: dict, path) -> tuple[dict, dict | None]:
    """``(pooling, projection)`` weight dicts; every tensor of ``state`` must be used."""
    used = set()

    def take_once(prefixes: list[str], names) -> dict:
        first = _take(state, prefixes[0], names, path)
        for prefix in prefixes[1:]:
            for name, tensor in _take(state, prefix, names, path).items():
                if not torch.equal(tensor, first[name]):
                    raise CheckpointImportError(
                        f"{path}: {prefixes[0] + name!r} and {prefix + name!r} are the same "
                        "module in the hparams but differ in the checkpoint"
                    )
        used.update(p + n for p in prefixes for n in names)
        return first

    pooling = take_once([p + POOLING_WEIGHTS for p in head.pooling], ("weight", "bias"))
    projection = take_once(head.projection, ("weight", "bias")) if head.projection else None
    left = sorted(set(state) - used)
    if left:
        raise CheckpointImportError(
            f"{path}: the head's state dict holds tensors sense cannot place: {', '.join(left[:5])}"
        )
    return pooling, projection


def build_pooling(
    head: HeadLayout, state: dict, frame_dim: int, activation: str | None, path
) -> torch.nn.Module:
    """Our :class:`~sense.nnet.pooling.AttentivePooling` holding the head's weights."""
    from sense.nnet.pooling import AttentivePooling

    pooling, projection = _head_weights(head, state, path)
    score = pooling["weight"]
    if score.dim() != 2 or score.shape[0] != 1 or _shape(pooling["bias"]) != [1]:
        raise CheckpointImportError(
            f"{path}: the attention scorer has shape {_shape(score)}, expected [1, D]"
        )
    if score.shape[1] != frame_dim:
        raise CheckpointImportError(
            f"{path}: the pooling takes {score.shape[1]}-dim frames, the base model gives "
            f"{frame_dim}-dim ones: give the model the recipe fine-tuned with --base"
        )
    output_dim = None
    if projection is not None:
        weight = projection["weight"]
        if weight.dim() != 2 or weight.shape[1] != frame_dim:
            raise CheckpointImportError(
                f"{path}: the projection has shape {_shape(weight)}, expected [out, {frame_dim}]"
            )
        output_dim = int(weight.shape[0])
    module = AttentivePooling(frame_dim, output_dim=output_dim, activation=activation)
    ours = {"attention.weight": score, "attention.bias": pooling["bias"]}
    if projection is not None:
        ours.update({f"projection.{k}": v for k, v in projection.items()})
    module.load_state_dict({k: v.float() for k, v in ours.items()}, strict=True)
    return module.eval()


def _base_reference(base: str) -> str:
    """A local base folder as an absolute path; a hub id as is."""
    path = os.path.expanduser(base)
    return os.path.abspath(path) if os.path.isdir(path) else base


def build_encoder_folder(base: str, model_type: str, state: dict, folder: str, path) -> None:
    """Save the checkpoint's encoder weights with the base's config and feature extractor."""
    from transformers import AutoFeatureExtractor

    from sense.lobes.speech import _model_class, load_config

    try:
        config = load_config(base)
    except (OSError, ValueError) as err:
        raise CheckpointImportError(
            f"cannot read the base model {base!r} ({err}); give the model the recipe fine-tuned "
            "with --base: a hub id, or a local folder with its config.json and "
            "preprocessor_config.json"
        ) from err
    if config.model_type != model_type:
        raise CheckpointImportError(
            f"the base model {base!r} is a {config.model_type!r} model, the checkpoint's "
            f"encoder a {model_type!r} one: give the model the recipe fine-tuned with --base"
        )
    model = _model_class(model_type)(config)
    _match_state(model, state, path, base)
    model.load_state_dict(state, strict=True)
    model.save_pretrained(folder)
    try:
        AutoFeatureExtractor.from_pretrained(base).save_pretrained(folder)
    except (OSError, ValueError) as err:
        logger.warning("%s has no feature extractor (%s): using the defaults", base, err)


# ---------------------------------------------------------------------------
# The import
# ---------------------------------------------------------------------------


def import_speechbrain(
    checkpoint,
    output: str | os.PathLike,
    hparams: str | os.PathLike | None = None,
    base: str | None = None,
    teacher: str | None = None,
    activation: str | None = FROM_RECIPE,
    force: bool = False,
) -> str:
    """Turn a SpeechBrain SENSE or SAMU checkpoint into a ``sense`` model folder.

    Parameters
    ----------
    checkpoint : str, os.PathLike or a sequence of them
        A ``CKPT+...`` folder (or a ``save`` folder holding one), or its
        ``.ckpt`` files (at least the encoder's and the head's).
    output : str or os.PathLike
        The model folder to write (:func:`sense.export.export_model` layout).
    hparams : str or os.PathLike, optional
        The recipe's hparams: the run's ``hyperparams.yaml`` or the recipe
        file. Default: the ``hyperparams.yaml`` in or up to two folders above
        the checkpoint.
    base : str, optional
        Hub id or local folder of the model the recipe fine-tuned. Default:
        the encoder's ``source`` in the hparams.
    teacher : str, optional
        Teacher to record (hub id or local folder). Default: the hparams'
        BGE-M3 or LaBSE ``source``.
    activation : str or None
        ``"recipe"``: what the hparams list after the pooling; ``None`` or
        ``"none"``, ``"tanh"``, ``"relu"``, ``"gelu"``: that, for an activation
        the recipe's ``train.py`` applies in code.
    force : bool
        Replace whatever is at ``output`` (by default only an earlier model folder).

    Returns
    -------
    str
        The model folder.

    Raises
    ------
    CheckpointImportError
        Anything that makes the checkpoint unusable, with the file and the problem.
    FileExistsError
        ``output`` holds anything but an earlier model folder, and not ``force``
        (:class:`sense.io.OutputExistsError`).
    """
    from sense.export import export_model, is_model_folder
    from sense.io import check_output_folder
    from sense.lobes.options import EncoderOptions
    from sense.lobes.speech import HFSpeechEncoder
    from sense.lobes.text import TeacherSpec
    from sense.nnet.pooling import ACTIVATIONS

    if activation not in (FROM_RECIPE, None, "none", *ACTIVATIONS):
        raise CheckpointImportError(
            f"activation must be {FROM_RECIPE!r}, 'none' or one of {sorted(ACTIVATIONS)}, "
            f"got {activation!r}"
        )
    output = os.path.abspath(os.path.expanduser(os.fspath(output)))
    check_output_folder(output, is_model_folder, "sense model", force=force)
    folder, files = find_checkpoint(checkpoint)
    hparams_path = os.fspath(hparams) if hparams is not None else os.fspath(find_hparams(folder))
    layout = read_recipe(hparams_path)
    for name in (layout.encoder, layout.head.recoverable):
        if name not in files:
            raise CheckpointImportError(
                f"{folder / (name + PARAM_EXT)}: missing; the recipe saves {name!r} there "
                f"(found: {', '.join(sorted(files)) or 'no .ckpt file'})"
            )
    base = base or layout.base
    if not base:
        raise CheckpointImportError(
            f"{hparams_path}: the encoder has no source; give the base model with --base"
        )
    if activation == FROM_RECIPE:
        activation = layout.head.activation
    activation = None if activation == "none" else activation
    teacher_source = teacher or layout.teacher
    if teacher_source is None:
        logger.warning("%s names no teacher: the model will not encode text", hparams_path)
    if layout.teacher_trained and teacher is None:
        logger.warning(
            "the recipe fine-tuned its teacher with the student; the model records the "
            "original %s, not the fine-tuned weights in the checkpoint",
            layout.teacher,
        )

    encoder_state = _encoder_state(files[layout.encoder])
    head_state = load_state(files[layout.head.recoverable])
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.import-", dir=parent)
    try:
        build_encoder_folder(base, layout.model_type, encoder_state, work, files[layout.encoder])
        del encoder_state
        encoder = HFSpeechEncoder(work, options=EncoderOptions(freeze=True))
        # The exported meta names the model this encoder was fine-tuned from.
        encoder.source = _base_reference(base)
        pooling = build_pooling(
            layout.head,
            head_state,
            encoder.output_dim,
            activation,
            files[layout.head.recoverable],
        )
        extra = {
            "imported_from": {
                "format": "speechbrain",
                "checkpoint": str(folder.resolve()),
                "checkpoint_meta": _checkpoint_summary(folder),
                "hparams": os.path.abspath(hparams_path),
                "encoder_wrapper": layout.wrapper,
                "head": {
                    "recoverable": layout.head.recoverable,
                    "projection": bool(layout.head.projection),
                    "activation": activation,
                },
                "teacher_fine_tuned": layout.teacher_trained,
            }
        }
        export_model(
            output,
            encoder,
            pooling,
            teacher=TeacherSpec(teacher_source, pooling=layout.teacher_pooling)
            if teacher_source is not None
            else None,
            extra=extra,
            normalize=True,
            force=force,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return output
