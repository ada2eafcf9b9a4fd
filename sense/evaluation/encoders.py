"""Models as benchmark encoders: anything with a name, an identity and two methods.

:class:`Encoder` is what the runner needs; :class:`SENSEEncoder` wraps a SENSE
(or SAMU-XLSR) model folder or hub id, :class:`SONAREncoder` the ``sonar``
package (imported only when used), and :func:`build_encoder` turns a YAML/CLI
spec into one.

Example
-------
>>> [e.name for e in build_encoders(["models/sense", "sonar"])]
['sense', 'SONAR']
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from sense.dataio import load_audio


class AudioItem(NamedTuple):
    """One utterance to embed: a file, or the segment ``[start, start + duration]``."""

    path: str
    start: float | None = None
    duration: float | None = None
    lang: str | None = None

    def load(self, sample_rate: int = 16000) -> torch.Tensor:
        """The waveform [T] at ``sample_rate`` (raises ``AudioError``)."""
        return load_audio(self.path, sample_rate, start=self.start, duration=self.duration)


@runtime_checkable
class Encoder(Protocol):
    """What the benchmarks need from a model; plug in any encoder with these.

    Attributes
    ----------
    name : str
        Row label in the results table.
    identity : str
        Changes whenever the model's outputs may change (weights, options):
        the embedding cache is keyed by it.

    Methods
    -------
    encode_audio(items) -> torch.Tensor
        [B, D] embeddings of a batch of :class:`AudioItem`.
    encode_text(texts, lang) -> torch.Tensor
        [B, D] embeddings of sentences in language ``lang`` (ISO 639-1).
    """

    name: str
    identity: str

    def encode_audio(self, items: Sequence[AudioItem]) -> torch.Tensor: ...

    def encode_text(self, texts: Sequence[str], lang: str | None = None) -> torch.Tensor: ...


def folder_fingerprint(folder: str) -> str:
    """Hash of the relative paths, sizes and mtimes of every file in ``folder``.

    Example
    -------
    >>> import tempfile
    >>> len(folder_fingerprint(tempfile.mkdtemp()))
    16
    """
    digest = hashlib.sha1()
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            rel = os.path.relpath(path, folder)
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _default_name(source: str) -> str:
    source = str(source).rstrip("/\\")
    return os.path.basename(source) or source


class SENSEEncoder:
    """A SENSE or SAMU-XLSR model folder (or hub id) as a benchmark encoder.

    Speech goes through the model's speech encoder and pooling
    (``SENSE.encode_batch``), text through its frozen teacher
    (``SENSE.encode_text``): the two sides of the shared space.

    Parameters
    ----------
    source : str
        Model folder written by :func:`sense.export.export_model` or a hub id.
    name : str, optional
        Row label in the table (default: the folder's name).
    savedir : str, optional
        Where ``SENSE.from_hparams`` may copy or download the model.
    device : str
        Device to run on.
    sample_rate : int, optional
        Rate to read audio at (default: the model's ``sample_rate``).
    """

    def __init__(
        self,
        source: str,
        name: str | None = None,
        savedir: str | None = None,
        device: str = "cpu",
        sample_rate: int | None = None,
    ):
        self.source = str(source)
        self.name = name or _default_name(self.source)
        self.savedir = savedir
        self.device = device
        self.sample_rate = sample_rate
        if os.path.isdir(self.source):
            where = os.path.realpath(self.source)
            self.identity = f"sense:{where}:{folder_fingerprint(where)}"
        else:
            self.identity = f"sense:{self.source}"
        self._model = None

    @property
    def model(self):
        """The loaded ``sense.inference.SENSE`` interface (loaded on first use)."""
        if self._model is None:
            from sense.inference import SENSE

            kwargs = {"source": self.source, "device": self.device}
            if self.savedir is not None:
                kwargs["savedir"] = self.savedir
            self._model = SENSE.from_hparams(**kwargs)
        return self._model

    @torch.no_grad()
    def encode_audio(self, items: Sequence[AudioItem]) -> torch.Tensor:
        # encode_waveforms batches the utterances and cuts any longer than the
        # model's max_duration into windows, pooled back into one vector
        rate = self.sample_rate or int(getattr(self.model, "sample_rate", 16000))
        wavs = [AudioItem(*item).load(rate) for item in items]
        emb = self.model.encode_waveforms(wavs, batch_size=max(1, len(wavs)))
        return torch.stack(emb).detach().float().cpu()

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], lang: str | None = None) -> torch.Tensor:
        return self.model.encode_text(list(texts)).detach().float().cpu()

    def __repr__(self) -> str:
        return f"SENSEEncoder(name={self.name!r}, source={self.source!r})"


#: ISO 639-3 codes of the SONAR speech encoders (``sonar_speech_encoder_<code>``);
#: a language without its own encoder uses the English one, as in the paper.
SONAR_SPEECH_LANGS = {
    "ar": "arb", "bn": "ben", "ca": "cat", "cs": "ces", "zh": "cmn", "cy": "cym",
    "da": "dan", "de": "deu", "en": "eng", "et": "est", "fi": "fin", "fr": "fra",
    "hi": "hin", "id": "ind", "it": "ita", "ja": "jpn", "kn": "kan", "ko": "kor",
    "mt": "mlt", "nl": "nld", "fa": "pes", "pl": "pol", "pt": "por", "ro": "ron",
    "ru": "rus", "sk": "slk", "es": "spa", "sv": "swe", "sw": "swh", "ta": "tam",
    "te": "tel", "tl": "tgl", "th": "tha", "tr": "tur", "uk": "ukr", "ur": "urd",
    "uz": "uzn", "vi": "vie",
}  # fmt: skip
#: FLORES-200 codes the SONAR text encoder takes as ``source_lang``.
SONAR_TEXT_LANGS = {
    "ar": "arb_Arab", "bs": "bos_Latn", "cs": "ces_Latn", "da": "dan_Latn",
    "de": "deu_Latn", "en": "eng_Latn", "es": "spa_Latn", "fa": "pes_Arab",
    "fr": "fra_Latn", "hr": "hrv_Latn", "hu": "hun_Latn", "it": "ita_Latn",
    "lb": "ltz_Latn", "ml": "mal_Mlym", "my": "mya_Mymr", "nl": "nld_Latn",
    "ny": "nya_Latn", "pl": "pol_Latn", "pt": "por_Latn", "ro": "ron_Latn",
    "ru": "rus_Cyrl", "sd": "snd_Arab", "uz": "uzn_Latn", "xh": "xho_Latn",
    "zh": "zho_Hans", "fi": "fin_Latn", "sk": "slk_Latn", "sl": "slv_Latn",
    "lt": "lit_Latn", "et": "est_Latn", "lv": "lvs_Latn", "el": "ell_Grek",
    "bg": "bul_Cyrl", "mt": "mlt_Latn", "sv": "swe_Latn", "tr": "tur_Latn",
}  # fmt: skip


class SONAREncoder:
    """SONAR (Meta) speech and text encoders through the ``sonar`` package.

    ``sonar`` (``pip install sonar-space``, with fairseq2) is imported only when
    an embedding is first asked for; without it a clear ``ImportError`` says
    how to install it. SONAR has one speech encoder per language: the one of
    the utterance's language is used when it exists, the English one otherwise
    (the paper's protocol).

    Parameters
    ----------
    name : str
        Row label in the table.
    text_encoder : str
        SONAR text encoder (and tokenizer) card.
    speech_encoders : dict, optional
        ISO 639-1 code -> speech encoder card, overriding the defaults
        (``sonar_speech_encoder_<iso639-3>``).
    text_langs : dict, optional
        ISO 639-1 code -> FLORES-200 code, added to :data:`SONAR_TEXT_LANGS`.
    fallback_lang : str
        Language whose speech encoder serves languages without their own.
    device : str
        Device to run on.
    batch_size : int
        Batch size handed to the SONAR pipelines.
    """

    def __init__(
        self,
        name: str = "SONAR",
        text_encoder: str = "text_sonar_basic_encoder",
        speech_encoders: Mapping[str, str] | None = None,
        text_langs: Mapping[str, str] | None = None,
        fallback_lang: str = "en",
        device: str = "cpu",
        batch_size: int = 8,
    ):
        self.name = name
        self.text_encoder = text_encoder
        self.speech_encoders = {
            lang: f"sonar_speech_encoder_{code}" for lang, code in SONAR_SPEECH_LANGS.items()
        }
        self.speech_encoders.update(speech_encoders or {})
        self.text_langs = {**SONAR_TEXT_LANGS, **(text_langs or {})}
        self.fallback_lang = fallback_lang
        self.device = device
        self.batch_size = batch_size
        self.identity = "sonar:" + json.dumps(
            [text_encoder, sorted(self.speech_encoders.items()), fallback_lang]
        )
        self._speech: dict[str, Any] = {}
        self._text = None

    @staticmethod
    def _import(module: str):
        if importlib.util.find_spec("sonar") is None:
            raise ImportError(
                "SONAREncoder needs the 'sonar' package (pip install sonar-space, "
                "which brings fairseq2); it is not installed"
            )
        return importlib.import_module(module)

    def speech_card(self, lang: str | None) -> str:
        """The speech encoder used for ``lang``."""
        card = self.speech_encoders.get(lang or "")
        return card or self.speech_encoders[self.fallback_lang]

    def _speech_pipeline(self, card: str):
        if card not in self._speech:
            speech = self._import("sonar.inference_pipelines.speech")
            self._speech[card] = speech.SpeechToEmbeddingModelPipeline(
                encoder=card, device=torch.device(self.device)
            )
        return self._speech[card]

    def _text_pipeline(self):
        if self._text is None:
            text = self._import("sonar.inference_pipelines.text")
            self._text = text.TextToEmbeddingModelPipeline(
                encoder=self.text_encoder,
                tokenizer=self.text_encoder,
                device=torch.device(self.device),
            )
        return self._text

    @torch.no_grad()
    def encode_audio(self, items: Sequence[AudioItem]) -> torch.Tensor:
        items = [AudioItem(*item) for item in items]
        out: list[torch.Tensor | None] = [None] * len(items)
        by_card: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            by_card.setdefault(self.speech_card(item.lang), []).append(i)
        for card, rows in by_card.items():
            wavs = [items[i].load(16000).unsqueeze(0) for i in rows]  # [1, T] as SONAR reads
            emb = self._speech_pipeline(card).predict(wavs, batch_size=self.batch_size)
            for i, e in zip(rows, emb):
                out[i] = e.detach().float().cpu()
        return torch.stack(out)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], lang: str | None = None) -> torch.Tensor:
        if lang not in self.text_langs:
            raise ValueError(
                f"SONAREncoder: no FLORES-200 code known for language {lang!r}; "
                "give it with text_langs={...}"
            )
        emb = self._text_pipeline().predict(
            list(texts), source_lang=self.text_langs[lang], batch_size=self.batch_size
        )
        return emb.detach().float().cpu()

    def __repr__(self) -> str:
        return f"SONAREncoder(name={self.name!r}, text_encoder={self.text_encoder!r})"


_ENCODER_TYPES: dict[str, Callable[..., Any]] = {"sense": SENSEEncoder, "sonar": SONAREncoder}


def _import_object(path: str):
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ValueError(f"encoder type {path!r}: use 'sense', 'sonar' or 'package.module:Class'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def build_encoder(spec: Any, device: str = "cpu") -> Encoder:
    """An :class:`Encoder` from a YAML/CLI spec.

    ``spec`` is one of:

    - a string: a SENSE model folder or hub id (``"sonar"`` selects SONAR);
    - a dict with ``type`` (``sense``, ``sonar`` or ``package.module:Class``)
      and that class's keyword arguments, e.g.
      ``{type: sense, source: results/samu/save, name: SAMU-XLSR}``;
    - an object that already has the :class:`Encoder` methods (e.g. built
      with ``!new:`` in the YAML).

    ``device`` is passed to the classes that take one, unless the spec sets it.

    Example
    -------
    >>> build_encoder({"type": "sonar", "name": "SONAR"}).name
    'SONAR'
    """
    if isinstance(spec, str):
        if spec.lower() == "sonar":
            return SONAREncoder(device=device)
        return SENSEEncoder(spec, device=device)
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        kind = kwargs.pop("type", "sense")
        factory = _ENCODER_TYPES.get(str(kind).lower()) or _import_object(str(kind))
        if factory in (SENSEEncoder, SONAREncoder):
            kwargs.setdefault("device", device)
        encoder = factory(**kwargs)
    else:
        encoder = spec
    missing = [
        a for a in ("name", "identity", "encode_audio", "encode_text") if not hasattr(encoder, a)
    ]
    if missing:
        raise TypeError(
            f"{encoder!r} is not an Encoder: it lacks {', '.join(missing)} "
            "(see sense.evaluation.Encoder)"
        )
    return encoder


def build_encoders(specs: Any, device: str = "cpu") -> list[Encoder]:
    """Several encoders; their names (table rows) must differ.

    Example
    -------
    >>> [e.name for e in build_encoders(["models/sense", {"source": "models/samu", "name": "SAMU"}])]
    ['sense', 'SAMU']
    """
    if specs is None:
        raise ValueError("no model to evaluate: set `models` (a list of model folders or specs)")
    if isinstance(specs, (str, Mapping)) or not isinstance(specs, Iterable):
        specs = [specs]
    encoders = [build_encoder(spec, device=device) for spec in specs]
    if not encoders:
        raise ValueError("no model to evaluate: `models` is empty")
    names = [e.name for e in encoders]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"two models are named {twice}: give each a name, e.g. "
            "{type: sense, source: <folder>, name: <row label>}"
        )
    return encoders
