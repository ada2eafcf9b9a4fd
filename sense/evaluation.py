"""Translation-retrieval benchmarks: manifests, encoder adapters, cached embedding, tables.

The SENSE paper (section V-A) evaluates speech encoders by translation
retrieval: a *query database* of utterances in language X and a *search
database* holding their translations in language Y (speech or text); each query
must find its own translation. This module holds everything the benchmark
recipes (``recipes/{VoxPopuli,MUSTC,mTEDx,FLEURS}/retrieval``) share:

- **Manifests.** A prepared language pair is a folder with ``query.json`` and
  ``search.json`` (SpeechBrain-style dicts keyed by entry id, in database
  order), ``dropped.tsv`` (every item left out, with the reason) and a stamp
  of the options it was prepared with. An audio entry is
  ``{"modality": "audio", "path", "start", "duration", "lang"}`` (``start`` is
  ``null`` for a whole file), a text entry ``{"modality": "text", "text",
  "lang"}``; each query names its translation with ``"target"``, an id of the
  search manifest. :func:`write_pair` refuses a query whose target is not in
  the search manifest, so nothing is ever silently mis-paired.
- **Encoders.** Any object with a ``name``, an ``identity`` and the two methods
  of :class:`Encoder` can be evaluated: :class:`SENSEEncoder` wraps a SENSE (or
  SAMU-XLSR) model folder, :class:`SONAREncoder` the ``sonar`` package (imported
  only when used), and :func:`build_encoder` turns a YAML/CLI spec into one.
- **Embedding cache.** :class:`EmbeddingCache` stores each embedding on disk
  under the encoder's identity and a key of the item (audio: resolved path,
  segment, file size and mtime, language; text: the text and its language),
  so a re-run, a second pair sharing a side, or a second model recomputes
  nothing it already has.
- **Running.** :func:`evaluate_pair` embeds both sides (batched, progress bar)
  and scores them with :func:`sense.retrieval.retrieval_metrics`;
  :func:`run_benchmark` does every (model, pair) and writes the results table;
  :func:`run_recipe` is the whole ``evaluate.py`` of a recipe.
- **TED-style talk segments** (MUST-C and mTEDx share the release layout):
  :func:`prepare_talk_segments`.

Example
-------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> query = {"q1": text_entry("hello", "en", target="s1")}
>>> search = {"s1": text_entry("bonjour", "fr")}
>>> _ = write_pair(folder, query, search, PrepReport(name="en-fr"), options={})
>>> q, s, targets = load_pair(folder)
>>> targets.shape
torch.Size([1])
"""

from __future__ import annotations

import csv
import glob
import hashlib
import importlib
import json
import logging
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from sense.dataio import AudioError, audio_info, load_audio
from sense.prepare import PreparationReport, done_stamp

logger = logging.getLogger(__name__)

AUDIO = "audio"
TEXT = "text"
#: A segment may run this many seconds past the end of its file (rounding of
#: the offsets in the release) before it is dropped as out of range.
SEGMENT_END_TOLERANCE = 0.05
#: Embeddings written to the cache at once while a manifest is embedded, so
#: an interrupted run keeps what it computed.
CACHE_FLUSH_EVERY = 2048

__all__ = [
    "AUDIO",
    "TEXT",
    "AudioChecker",
    "AudioItem",
    "EmbeddingCache",
    "Encoder",
    "PrepReport",
    "SENSEEncoder",
    "SONAREncoder",
    "audio_entry",
    "build_encoder",
    "build_encoders",
    "embed_manifest",
    "evaluate_pair",
    "item_key",
    "load_pair",
    "pair_is_prepared",
    "parse_pair",
    "prepare_talk_segments",
    "run_benchmark",
    "run_recipe",
    "text_entry",
    "write_pair",
]


# ---------------------------------------------------------------------------
# Manifest entries and preparation reports
# ---------------------------------------------------------------------------


def parse_pair(pair: str) -> tuple[str, str]:
    """Split a language pair ``"x-y"`` into ``("x", "y")``.

    Example
    -------
    >>> parse_pair("fr-en")
    ('fr', 'en')
    """
    parts = str(pair).split("-")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"a language pair is written 'x-y' (e.g. 'fr-en'), got {pair!r}")
    return parts[0], parts[1]


def audio_entry(
    path: str,
    lang: str,
    start: float | None = None,
    duration: float | None = None,
    target: str | None = None,
    **extra: Any,
) -> dict:
    """A manifest entry for an audio file or a segment of one.

    Example
    -------
    >>> audio_entry("talk.wav", "en", start=1.5, duration=2.0, target="s3")["modality"]
    'audio'
    """
    entry = {
        "modality": AUDIO,
        "path": os.path.abspath(path),
        "start": None if start is None else float(start),
        "duration": None if duration is None else float(duration),
        "lang": lang,
    }
    if target is not None:
        entry["target"] = target
    entry.update(extra)
    return entry


def text_entry(text: str, lang: str, target: str | None = None, **extra: Any) -> dict:
    """A manifest entry for a sentence.

    Example
    -------
    >>> text_entry("Guten Tag", "de")
    {'modality': 'text', 'text': 'Guten Tag', 'lang': 'de'}
    """
    entry = {"modality": TEXT, "text": text, "lang": lang}
    if target is not None:
        entry["target"] = target
    entry.update(extra)
    return entry


@dataclass
class PrepReport(PreparationReport):
    """Items left out while preparing one language pair, each with its reason.

    The rows of :class:`sense.prepare.PreparationReport` (language, split,
    item, reason), written as ``dropped.tsv`` in the pair folder, with the
    pair's name for the log.

    Example
    -------
    >>> report = PrepReport(name="fr-en")
    >>> report.add("fr", "test", "utt1", "audio file missing: /data/utt1.ogg")
    >>> report.summary()
    'fr-en: 1 item(s) dropped (1 x audio file missing)'
    """

    name: str = ""

    def summary(self) -> str:
        """One line: how many items were dropped, per reason (up to its first colon)."""
        if not self.rows:
            return f"{self.name}: nothing dropped"
        counts: dict[str, int] = {}
        for row in self.rows:
            key = row["reason"].split(":", 1)[0]
            counts[key] = counts.get(key, 0) + 1
        reasons = ", ".join(f"{n} x {why}" for why, n in sorted(counts.items()))
        return f"{self.name}: {len(self.rows)} item(s) dropped ({reasons})"


class AudioChecker:
    """Validate audio files and segments once per file (headers only).

    ``check`` returns ``None`` when the file (or the segment
    ``[start, start + duration]``) can be read, else the reason it cannot.

    Example
    -------
    >>> AudioChecker().check("/no/such/file.wav")
    'audio file missing'
    """

    def __init__(self, tolerance: float = SEGMENT_END_TOLERANCE):
        self.tolerance = tolerance
        self._info: dict[str, tuple[float, str | None]] = {}

    def duration(self, path: str) -> float | None:
        """Length of the file in seconds, ``None`` when it is not usable."""
        length, _ = self._lookup(path)
        return length

    def _lookup(self, path: str) -> tuple[float | None, str | None]:
        if path not in self._info:
            try:
                frames, rate = audio_info(path)
            except AudioError as err:
                problem = "audio file missing" if err.problem == "no such file" else err.problem
                self._info[path] = (None, problem)
            else:
                if frames <= 0:
                    self._info[path] = (None, "empty audio")
                else:
                    self._info[path] = (frames / rate, None)
        return self._info[path]

    def check(
        self, path: str, start: float | None = None, duration: float | None = None
    ) -> str | None:
        length, problem = self._lookup(path)
        if problem is not None:
            return problem
        if start is None and duration is None:
            return None
        start = start or 0.0
        if start < 0 or (duration is not None and duration <= 0):
            return f"invalid segment: start {start}, duration {duration}"
        end = start + (duration or 0.0)
        if start >= length or end > length + self.tolerance:
            return (
                f"segment beyond the end of the audio: [{start:.2f}, {end:.2f}] s of {length:.2f} s"
            )
        return None


def _atomic_json(path: str, data: Any) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_entry(side: str, item: str, entry: Mapping) -> None:
    modality = entry.get("modality")
    if modality == AUDIO:
        if not entry.get("path"):
            raise ValueError(f"{side} entry {item!r}: audio entry without a path")
    elif modality == TEXT:
        if not isinstance(entry.get("text"), str) or not entry["text"].strip():
            raise ValueError(f"{side} entry {item!r}: text entry without text")
    else:
        raise ValueError(f"{side} entry {item!r}: modality must be 'audio' or 'text'")


def write_pair(
    folder: str,
    query: Mapping[str, dict],
    search: Mapping[str, dict],
    report: PrepReport,
    options: Mapping[str, Any],
) -> str:
    """Write a prepared language pair (``query.json``, ``search.json``, ``dropped.tsv``).

    Every query must name an existing search entry in ``"target"``: a query
    without one is a bug of the preparation and raises, it is never written.
    The report is written and logged first, so a pair with nothing left still
    says why. A stamp of ``options`` is written last: :func:`pair_is_prepared`
    then skips the work on a re-run with the same options.

    Returns
    -------
    str
        ``folder``.

    Raises
    ------
    ValueError
        If no query is left, or a query's target is not in the search manifest.
    """
    name = report.name or os.path.basename(os.path.normpath(folder))
    os.makedirs(folder, exist_ok=True)
    report_path = os.path.join(folder, "dropped.tsv")
    report.write(report_path)
    log = logger.warning if len(report) else logger.info
    log("%s (details in %s)", report.summary(), report_path)
    if not query:
        raise ValueError(
            f"{name}: no query left to evaluate; {report.summary()}; see {report_path}"
        )
    if not search:
        raise ValueError(f"{name}: the search database is empty")
    for item, entry in query.items():
        _check_entry("query", item, entry)
        if entry.get("target") not in search:
            raise ValueError(
                f"{name}: query {item!r} names target {entry.get('target')!r}, "
                "which is not in the search manifest"
            )
    for item, entry in search.items():
        _check_entry("search", item, entry)
    _atomic_json(os.path.join(folder, "query.json"), dict(query))
    _atomic_json(os.path.join(folder, "search.json"), dict(search))
    _, _, mark_done = done_stamp(folder, dict(options))
    mark_done()
    return folder


def pair_is_prepared(folder: str, options: Mapping[str, Any]) -> bool:
    """True when ``folder`` holds a complete preparation made with ``options``."""
    _, is_done, _ = done_stamp(folder, dict(options))
    manifests = ("query.json", "search.json")
    return is_done() and all(os.path.isfile(os.path.join(folder, n)) for n in manifests)


def load_pair(folder: str) -> tuple[dict, dict, torch.Tensor]:
    """Read a prepared pair: query and search manifests and the target indices.

    Returns
    -------
    query, search : dict
        Manifests in database order.
    targets : torch.Tensor
        [Nq] int64: position in ``search`` of each query's translation.
    """
    for name in ("query.json", "search.json"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(f"{folder}: no {name}; run the preparation first")
    query = _read_json(os.path.join(folder, "query.json"))
    search = _read_json(os.path.join(folder, "search.json"))
    position = {item: i for i, item in enumerate(search)}
    missing = [q for q, e in query.items() if e.get("target") not in position]
    if missing:
        raise ValueError(
            f"{folder}: {len(missing)} query(ies) name a target missing from search.json "
            f"(first: {missing[0]!r})"
        )
    targets = torch.tensor([position[e["target"]] for e in query.values()], dtype=torch.int64)
    return query, search, targets


# ---------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Embedding cache
# ---------------------------------------------------------------------------


def item_key(entry: Mapping) -> str:
    """Cache key of a manifest entry: what determines its embedding.

    Audio: the resolved path, the segment, the file's size and mtime and the
    language (a re-recorded or re-cut file gets a new key); text: the text
    and its language.

    Example
    -------
    >>> item_key(text_entry("hi", "en")) == item_key(text_entry("hi", "en"))
    True
    """
    if entry["modality"] == TEXT:
        parts = [TEXT, entry["text"], entry.get("lang")]
    else:
        path = os.path.realpath(entry["path"])
        try:
            stat = os.stat(path)
            stamp = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            stamp = [None, None]
        parts = [AUDIO, path, entry.get("start"), entry.get("duration"), *stamp, entry.get("lang")]
    return hashlib.sha1(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:40] or "model"


class EmbeddingCache:
    """Embeddings on disk, one folder per encoder identity, written in shards.

    Shards are written atomically (temporary file, then rename), so an
    interrupted run leaves only whole shards; the next run reuses them.

    Example
    -------
    >>> cache = EmbeddingCache(tempfile.mkdtemp())
    >>> cache.put("model-a", ["k1", "k2"], torch.ones(2, 3))
    >>> sorted(cache.get("model-a", ["k1", "k3"]))
    ['k1']
    """

    def __init__(self, folder: str):
        self.folder = folder
        self._loaded: dict[str, dict[str, torch.Tensor]] = {}

    def model_folder(self, identity: str) -> str:
        digest = hashlib.sha1(identity.encode()).hexdigest()[:16]
        name = _slug(identity.split(":", 2)[-1].split("/")[-1])
        return os.path.join(self.folder, f"{name}-{digest}")

    def _load(self, identity: str) -> dict[str, torch.Tensor]:
        if identity not in self._loaded:
            table: dict[str, torch.Tensor] = {}
            folder = self.model_folder(identity)
            for path in sorted(glob.glob(os.path.join(folder, "shard-*.pt"))):
                try:
                    shard = torch.load(path, map_location="cpu", weights_only=True)
                    keys, embs = shard["keys"], shard["embeddings"]
                except Exception as err:  # a damaged shard costs a recomputation only
                    logger.warning("ignoring unreadable cache shard %s (%s)", path, err)
                    continue
                table.update(zip(keys, embs))
            self._loaded[identity] = table
        return self._loaded[identity]

    def get(self, identity: str, keys: Iterable[str]) -> dict[str, torch.Tensor]:
        """The cached embeddings among ``keys``."""
        table = self._load(identity)
        return {k: table[k] for k in keys if k in table}

    def put(self, identity: str, keys: Sequence[str], embeddings: torch.Tensor) -> None:
        """Store embeddings [N, D] under ``keys`` (one new shard)."""
        if len(keys) == 0:
            return
        embeddings = embeddings.detach().float().cpu().contiguous()
        if embeddings.dim() != 2 or embeddings.shape[0] != len(keys):
            raise ValueError(f"{len(keys)} keys but embeddings of shape {tuple(embeddings.shape)}")
        folder = self.model_folder(identity)
        os.makedirs(folder, exist_ok=True)
        id_file = os.path.join(folder, "identity.txt")
        if not os.path.exists(id_file):
            with open(id_file, "w", encoding="utf-8") as f:
                f.write(identity + "\n")
        path = os.path.join(folder, f"shard-{uuid.uuid4().hex}.pt")
        tmp = path + ".tmp"
        torch.save({"keys": list(keys), "embeddings": embeddings}, tmp)
        os.replace(tmp, path)
        self._load(identity).update(zip(keys, embeddings))


# ---------------------------------------------------------------------------
# Embedding and scoring
# ---------------------------------------------------------------------------


def _entry_seconds(entry: Mapping, checker: AudioChecker) -> float:
    if entry.get("duration") is not None:
        return float(entry["duration"])
    return checker.duration(entry["path"]) or 0.0


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="utt", dynamic_ncols=True, leave=False)


def _as_rows(emb: Any, n: int, what: str) -> torch.Tensor:
    emb = torch.as_tensor(emb)
    if emb.dim() != 2 or emb.shape[0] != n:
        raise ValueError(f"{what} returned shape {tuple(emb.shape)} for a batch of {n}")
    return emb.detach().float().cpu()


def embed_manifest(
    encoder: Encoder,
    manifest: Mapping[str, dict],
    cache: EmbeddingCache | None = None,
    batch_size: int = 8,
    desc: str | None = None,
    text_batch_size: int | None = None,
) -> torch.Tensor:
    """Embed every entry of a manifest, in order; [N, D] float32.

    Entries already in ``cache`` (for this encoder's identity) are read, the
    others computed in batches (audio sorted by length to limit padding,
    ``batch_size`` at a time; text grouped by language, ``text_batch_size``
    at a time, by default ``8 * batch_size``) behind a progress bar and
    stored as they come.
    """
    if not manifest:
        raise ValueError("cannot embed an empty manifest")
    text_batch_size = text_batch_size or 8 * batch_size
    entries = list(manifest.values())
    keys = [item_key(e) for e in entries]
    found = cache.get(encoder.identity, keys) if cache is not None else {}
    todo = sorted({k: i for i, k in enumerate(keys) if k not in found}.values())
    computed: dict[str, torch.Tensor] = {}
    pending_keys: list[str] = []
    pending: list[torch.Tensor] = []

    def flush(force: bool = False) -> None:
        if cache is not None and pending and (force or len(pending_keys) >= CACHE_FLUSH_EVERY):
            cache.put(encoder.identity, list(pending_keys), torch.cat(pending))
            pending_keys.clear()
            pending.clear()

    def store(rows: list[int], emb: torch.Tensor) -> None:
        for i, e in zip(rows, emb):
            computed[keys[i]] = e
        pending_keys.extend(keys[i] for i in rows)
        pending.append(emb)
        flush()

    if todo:
        checker = AudioChecker()
        audio = [i for i in todo if entries[i]["modality"] == AUDIO]
        audio.sort(key=lambda i: -_entry_seconds(entries[i], checker))
        texts: dict[Any, list[int]] = {}
        for i in todo:
            if entries[i]["modality"] == TEXT:
                texts.setdefault(entries[i].get("lang"), []).append(i)
        bar = _progress(len(todo), desc or encoder.name)
        try:
            for b in range(0, len(audio), batch_size):
                rows = audio[b : b + batch_size]
                batch = [
                    AudioItem(
                        entries[i]["path"],
                        entries[i].get("start"),
                        entries[i].get("duration"),
                        entries[i].get("lang"),
                    )
                    for i in rows
                ]
                store(rows, _as_rows(encoder.encode_audio(batch), len(rows), "encode_audio"))
                bar.update(len(rows))
            for lang, group in texts.items():
                for b in range(0, len(group), text_batch_size):
                    rows = group[b : b + text_batch_size]
                    sentences = [entries[i]["text"] for i in rows]
                    emb = encoder.encode_text(sentences, lang)
                    store(rows, _as_rows(emb, len(rows), "encode_text"))
                    bar.update(len(rows))
        finally:
            flush(force=True)
            bar.close()
    return torch.stack([found[k] if k in found else computed[k] for k in keys])


def evaluate_pair(
    encoder: Encoder,
    folder: str,
    cache: EmbeddingCache | None = None,
    ks: Sequence[int] = (1, 5, 10),
    mean_subtract: bool = True,
    batch_size: int = 8,
    text_batch_size: int | None = None,
) -> dict[str, float | int]:
    """R@k, MRR and database sizes of one encoder on one prepared pair.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> q = {"q1": text_entry("a", "en", target="s1"), "q2": text_entry("b", "en", target="s2")}
    >>> s = {"s1": text_entry("a", "fr"), "s2": text_entry("b", "fr")}
    >>> _ = write_pair(folder, q, s, PrepReport(name="en-fr"), {})
    >>> class OneHot:
    ...     name = identity = "one-hot"
    ...     def encode_text(self, texts, lang=None):
    ...         return torch.stack([torch.eye(2)[ord(t) - ord("a")] for t in texts])
    ...     def encode_audio(self, items): raise NotImplementedError
    >>> evaluate_pair(OneHot(), folder, ks=(1,))["R@1"]
    1.0
    """
    from sense.retrieval import retrieval_metrics

    name = os.path.basename(os.path.normpath(folder))
    query, search, targets = load_pair(folder)
    q = embed_manifest(
        encoder, query, cache, batch_size, f"{encoder.name} {name} query", text_batch_size
    )
    s = embed_manifest(
        encoder, search, cache, batch_size, f"{encoder.name} {name} search", text_batch_size
    )
    return retrieval_metrics(q, s, targets, ks=tuple(ks), mean_subtract=mean_subtract)


def run_benchmark(
    encoders: Sequence[Encoder],
    pairs: Mapping[str, str],
    output_folder: str,
    cache_folder: str | EmbeddingCache | None = None,
    ks: Sequence[int] = (1, 5, 10),
    mean_subtract: bool = True,
    batch_size: int = 8,
    text_batch_size: int | None = None,
    metric: str = "R@1",
    title: str | None = None,
    group: str | None = None,
    table_name: str = "retrieval",
) -> dict[str, dict[str, dict]]:
    """Evaluate every encoder on every prepared pair and write the table.

    Parameters
    ----------
    encoders : sequence of Encoder
        Rows of the table.
    pairs : dict
        Column name (e.g. ``"fr-en"``) -> prepared pair folder.
    output_folder : str
        Receives ``metrics.json`` (every metric of every model and pair) and the
        table of ``metric`` (``<table_name>.{md,json,csv}``), which also carries the
        "# DB query" and "# DB search" rows. An existing table there gains or
        updates rows, so models can be added one run at a time.
    cache_folder : str or EmbeddingCache, optional
        Embedding cache, or its folder (no cache when ``None``).
    ks, mean_subtract, batch_size, text_batch_size
        Recall cut-offs, the paper's mean subtraction, utterances and
        sentences per batch.
    metric, title, group : str
        Metric shown in the table, its caption and the data set heading of
        its columns (e.g. ``"FLEURS"``).
    table_name : str
        File name of the table in ``output_folder``.

    Returns
    -------
    dict
        ``{model name: {pair: metrics}}``.
    """
    if isinstance(cache_folder, EmbeddingCache) or cache_folder is None:
        cache = cache_folder
    else:
        cache = EmbeddingCache(cache_folder)
    results: dict[str, dict[str, dict]] = {}
    for encoder in encoders:
        results[encoder.name] = {}
        for pair, folder in pairs.items():
            metrics = evaluate_pair(
                encoder, folder, cache, ks, mean_subtract, batch_size, text_batch_size
            )
            results[encoder.name][pair] = metrics
            logger.info(
                "%s %s: %s",
                encoder.name,
                pair,
                ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float)),
            )
    os.makedirs(output_folder, exist_ok=True)
    metrics_path = os.path.join(output_folder, "metrics.json")
    previous = _read_json(metrics_path) if os.path.isfile(metrics_path) else {}
    for model, per_pair in results.items():
        previous.setdefault(model, {}).update(per_pair)
    _atomic_json(metrics_path, previous)
    _write_table(results, os.path.join(output_folder, table_name), metric, title, group)
    return results


def _write_table(results, base, metric, title, group) -> str:
    """Add the rows of ``results`` to the table ``<base>.{md,json,csv}``."""
    from sense.results import RetrievalTable

    table = RetrievalTable.open(base, title=title or "", metric=metric)
    for model, per_pair in results.items():
        for pair, metrics in per_pair.items():
            table.add(model, pair, metrics, group=group)
    table.save(base)
    logger.info("results table: %s.md\n%s", base, table.to_markdown())
    return base


# ---------------------------------------------------------------------------
# TED-style talks cut into segments (MUST-C, mTEDx)
# ---------------------------------------------------------------------------


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f]


def read_segment_yaml(path: str) -> list[dict]:
    """The segment list of a MUST-C / mTEDx split YAML (one mapping per line).

    Each item has at least ``wav``, ``offset`` and ``duration`` (MUST-C also
    ``rW``, ``uW``, ``speaker_id``).
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=loader)
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a YAML list of segments, got {type(data).__name__}")
    return data


def _split_root(data_folder: str, pair: str) -> str:
    candidates = [os.path.join(data_folder, pair, "data")]
    if os.path.basename(os.path.normpath(data_folder)) == pair:
        candidates.append(os.path.join(data_folder, "data"))
    for path in candidates:
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(
        f"no release folder for {pair}: looked for {' and '.join(candidates)} "
        f"(expected layout <data_folder>/{pair}/data/<split>/{{wav,txt}})"
    )


def _talk_audio(wav_dir: str, wav: str, extensions: Sequence[str]) -> str:
    """The audio file a segment's ``wav`` field names (with or without extension)."""
    path = os.path.join(wav_dir, str(wav))
    if os.path.isfile(path):
        return path
    stem = os.path.splitext(path)[0] if os.path.splitext(path)[1] in extensions else path
    for ext in extensions:
        if os.path.isfile(stem + ext):
            return stem + ext
    return path if os.path.splitext(path)[1] else stem + extensions[0]


def _split_texts(txt_dir: str, split: str, lang: str) -> tuple[str, list[str]]:
    path = os.path.join(txt_dir, f"{split}.{lang}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (the {lang} side of split {split})")
    return path, _read_lines(path)


def prepare_talk_segments(
    data_folder: str,
    save_folder: str,
    pair: str,
    query_splits: Sequence[str],
    search_splits: Sequence[str],
    audio_extensions: Sequence[str] = (".wav", ".flac"),
    dedup_search_text: bool = True,
    skip_prep: bool = False,
) -> str:
    """Speech -> text retrieval manifests from a MUST-C / mTEDx style release.

    Layout: ``<data_folder>/<src>-<tgt>/data/<split>/wav/<talk>.{wav,flac}``
    and ``.../<split>/txt/<split>.{yaml,<src>,<tgt>}``, where line ``i`` of the
    YAML (``{duration, offset, ..., wav}``) is the segment of talk ``wav``
    whose transcript and translation are line ``i`` of ``<split>.<src>`` and
    ``<split>.<tgt>``.

    Queries are the segments of ``query_splits`` (cut from the talk
    recordings by offset and duration when embedded); the search database is
    the ``<tgt>`` text of ``search_splits`` plus the translations of the
    queries. A segment whose talk audio is missing or unreadable, that runs
    past the end of its audio, or whose translation is empty, is left out and
    reported. With ``dedup_search_text`` identical sentences are one search
    entry (the first occurrence's id), so a query cannot lose to an exact copy
    of its own translation.

    Returns
    -------
    str
        The pair folder ``<save_folder>/<pair>``.

    Raises
    ------
    FileNotFoundError
        If a split folder, its YAML or its target text file is missing.
    ValueError
        If a YAML and its text files do not have the same number of lines
        (their alignment is then unknown: nothing is paired).
    """
    src, tgt = parse_pair(pair)
    folder = os.path.join(save_folder, pair)
    options = {
        "data_folder": os.path.abspath(data_folder),
        "pair": pair,
        "query_splits": list(query_splits),
        "search_splits": list(search_splits),
        "dedup_search_text": bool(dedup_search_text),
    }
    if skip_prep or pair_is_prepared(folder, options):
        logger.info("%s: already prepared in %s", pair, folder)
        return folder
    root = _split_root(data_folder, pair)
    report = PrepReport(name=pair)
    checker = AudioChecker()
    search: dict[str, dict] = {}
    text_to_id: dict[str, str] = {}

    def add_search(item: str, text: str) -> str:
        if dedup_search_text and text in text_to_id:
            return text_to_id[text]
        text_to_id.setdefault(text, item)
        search[item] = text_entry(text, tgt)
        return item

    query: dict[str, dict] = {}
    for split in list(dict.fromkeys(list(query_splits) + list(search_splits))):
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"{split_dir}: no such split folder")
        txt_dir = os.path.join(split_dir, "txt")
        tgt_path, tgt_lines = _split_texts(txt_dir, split, tgt)
        if split in query_splits:
            yaml_path = os.path.join(txt_dir, f"{split}.yaml")
            if not os.path.isfile(yaml_path):
                raise FileNotFoundError(f"{yaml_path}: no such file (segments of split {split})")
            segments = read_segment_yaml(yaml_path)
            src_path = os.path.join(txt_dir, f"{split}.{src}")
            src_lines = _read_lines(src_path) if os.path.isfile(src_path) else None
            counts = {yaml_path: len(segments), tgt_path: len(tgt_lines)}
            if src_lines is not None:
                counts[src_path] = len(src_lines)
            if len(set(counts.values())) != 1:
                detail = ", ".join(f"{p}: {n}" for p, n in counts.items())
                raise ValueError(
                    f"split {split} of {pair}: the segment YAML and text files differ in "
                    f"length ({detail}); their lines cannot be paired"
                )
            for i, (seg, translation) in enumerate(zip(segments, tgt_lines)):
                item = f"{split}/{i}"
                if not isinstance(seg, Mapping) or not {"wav", "offset", "duration"} <= set(seg):
                    report.add(src, split, item, f"bad segment: line {i + 1} of {yaml_path}")
                    continue
                path = _talk_audio(os.path.join(split_dir, "wav"), seg["wav"], audio_extensions)
                offset, duration = float(seg["offset"]), float(seg["duration"])
                problem = checker.check(path, offset, duration)
                if problem is not None:
                    report.add(src, split, item, f"{problem}: {path}")
                    continue
                if not translation.strip():
                    report.add(
                        src, split, item, f"no translation: line {i + 1} of {tgt_path} is empty"
                    )
                    continue
                target = add_search(item, translation.strip())
                extra = {"text": src_lines[i]} if src_lines is not None else {}
                query[item] = audio_entry(
                    path, src, offset, duration, target=target, talk=str(seg["wav"]), **extra
                )
        if split in search_splits:
            for i, translation in enumerate(tgt_lines):
                if translation.strip():
                    add_search(f"{split}/{i}", translation.strip())
                elif split not in query_splits:
                    report.add(
                        tgt, split, f"{split}/{i}", f"empty translation: line {i + 1} of {tgt_path}"
                    )
    return write_pair(folder, query, search, report, options)


# ---------------------------------------------------------------------------
# The recipes' entry point
# ---------------------------------------------------------------------------


def read_tsv(path: str, header: bool = False) -> tuple[list[str] | None, list[list[str]]]:
    """Rows of a tab-separated file, no quoting (the releases use none)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = [r for r in rows if r and any(cell.strip() for cell in r)]
    if header:
        return (rows[0] if rows else []), rows[1:]
    return None, rows


def run_recipe(
    argv: Sequence[str], prepare: Callable[[dict], Mapping[str, str]]
) -> dict[str, dict[str, dict]]:
    """The whole ``evaluate.py`` of a retrieval recipe.

    ``python evaluate.py hparams/evaluate.yaml --data_folder=... --models="[a, b]"``:
    reads the hparams (SpeechBrain command line), prepares the pairs with
    ``prepare(hparams) -> {pair: folder}`` (on the main process), embeds them
    with every model of ``models`` (:func:`build_encoders`) and writes the
    table in ``output_folder``.
    """
    import speechbrain as sb
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.utils.distributed import run_on_main

    hparams_file, run_opts, overrides = sb.parse_arguments(list(argv))
    with open(hparams_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    tables = _recipe_tables(hparams)
    hparams["pairs"] = list(dict.fromkeys(p for t in tables.values() for p in t["pairs"]))
    prepared: dict[str, Mapping[str, str]] = {}
    run_on_main(lambda: prepared.update(out=prepare(hparams)))
    folders = dict(prepared.get("out") or {})
    for pair in hparams["pairs"]:
        folders.setdefault(pair, os.path.join(hparams["save_folder"], pair))
    device = run_opts.get("device") or hparams.get("device", "cpu")
    encoders = build_encoders(hparams["models"], device=device)
    cache = EmbeddingCache(hparams["cache_folder"]) if hparams.get("cache_folder") else None
    results: dict[str, dict[str, dict]] = {}
    for name, table in tables.items():
        out = run_benchmark(
            encoders,
            {pair: folders[pair] for pair in table["pairs"]},
            output_folder=hparams["output_folder"],
            cache_folder=cache,
            ks=hparams.get("ks", (1, 5, 10)),
            mean_subtract=hparams.get("mean_subtract", True),
            batch_size=hparams.get("batch_size", 8),
            text_batch_size=hparams.get("text_batch_size"),
            metric=hparams.get("metric", "R@1"),
            title=table.get("title"),
            group=table.get("group"),
            table_name=name,
        )
        for model, per_pair in out.items():
            results.setdefault(model, {}).update(per_pair)
    return results


def _recipe_tables(hparams: Mapping) -> dict[str, dict]:
    """The tables a recipe writes: ``{file name: {pairs, title, group}}``.

    ``tables`` in the hparams maps a table name to its ``pairs`` (columns, in
    order), ``title`` and ``group``; without it, one table ``retrieval`` of
    every pair of ``pairs``. When both are given, ``pairs`` restricts the
    tables to those columns (so ``--pairs=[fr-en]`` runs one pair).
    """
    wanted = hparams.get("pairs")
    if wanted is not None:
        wanted = [str(p) for p in wanted]
        for pair in wanted:
            parse_pair(pair)
    specs = hparams.get("tables")
    if not specs:
        if not wanted:
            raise ValueError("no pair to evaluate: set `pairs` (e.g. [fr-en, de-en])")
        return {
            "retrieval": {
                "pairs": wanted,
                "title": hparams.get("title"),
                "group": hparams.get("group"),
            }
        }
    tables = {}
    for name, spec in specs.items():
        pairs = [str(p) for p in spec.get("pairs", [])]
        if wanted is not None:
            pairs = [p for p in pairs if p in wanted]
        if pairs:
            tables[str(name)] = {**spec, "pairs": pairs}
    if wanted is not None:
        listed = {p for t in tables.values() for p in t["pairs"]}
        extra = [p for p in wanted if p not in listed]
        if extra:
            tables["retrieval"] = {
                "pairs": extra,
                "title": hparams.get("title"),
                "group": hparams.get("group"),
            }
    if not tables:
        raise ValueError("no pair to evaluate: `tables` and `pairs` leave no column")
    return tables


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use a recipe: python recipes/<Dataset>/retrieval/evaluate.py hparams/evaluate.yaml")
