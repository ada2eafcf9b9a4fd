"""Word boundaries of an utterance: from a file, by CTC forced alignment, or by WhisperX.

Sources, in the order :class:`WordAligner` tries them for each utterance:

1. words given with the utterance (a manifest's ``"words"``, e.g. a speech
   synthesizer's exact boundaries);
2. an alignment file given by the user: a CTM file (``utt channel start
   duration word [confidence]``, one word a line) or Praat TextGrids (the
   ``words`` tier, or the first interval tier), read by :class:`AlignmentFiles`;
3. forced alignment of the transcript with a wav2vec2 CTC model (a hub id or
   a folder holding ``Wav2Vec2ForCTC`` and its processor) through
   ``torchaudio.functional.forced_align``: :class:`CTCAligner`;
4. WhisperX's aligner, when the ``whisperx`` package is installed (its
   alignment models are fetched from the hub on first use).

Words are ``(word, start_s, end_s)`` tuples, sorted by start.

Example
-------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "words.ctm")
>>> _ = open(path, "w").write("utt1 1 0.00 0.30 bonjour\\nutt1 1 0.35 0.20 madame 0.9\\n")
>>> read_ctm(path)["utt1"]
[('bonjour', 0.0, 0.3), ('madame', 0.35, 0.55)]
"""

from __future__ import annotations

import importlib.util
import logging
import os
import unicodedata
from collections.abc import Mapping, Sequence

import torch

logger = logging.getLogger(__name__)

Word = tuple[str, float, float]

CTM_EXTENSIONS = (".ctm",)
TEXTGRID_EXTENSIONS = (".textgrid",)
#: Tier names tried first in a TextGrid (case-insensitive).
WORD_TIERS = ("words", "word")
#: Labels of aligners that mark silence or noise, not words.
NON_WORDS = frozenset({"", "sil", "sp", "spn", "<eps>", "<sil>", "<s>", "</s>", "<unk>"})
SAMPLE_RATE = 16000


def _sorted_words(words) -> list[Word]:
    return sorted(((w, float(s), float(e)) for w, s, e in words), key=lambda x: (x[1], x[2]))


# ---------------------------------------------------------------------------
# Files given by the user
# ---------------------------------------------------------------------------


def read_ctm(path: str) -> dict[str, list[Word]]:
    """Words of every utterance of a CTM file: ``{utterance id: [(word, start, end)]}``.

    Lines are ``utt channel start duration word [confidence ...]``; blank lines
    and lines starting with ``;;`` or ``#`` are skipped; silence labels
    (``<eps>``, ``sil``...) are dropped.

    Raises
    ------
    ValueError
        A malformed line (the message names the file and the line).
    """
    out: dict[str, list[Word]] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the CTM file ({err})") from err
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith((";;", "#")):
            continue
        parts = line.split()
        if len(parts) < 5:
            raise ValueError(f"{path}:{n}: a CTM line is 'utt channel start duration word'")
        try:
            start, duration = float(parts[2]), float(parts[3])
        except ValueError as err:
            raise ValueError(f"{path}:{n}: start and duration must be numbers") from err
        if duration < 0:
            raise ValueError(f"{path}:{n}: negative duration {duration}")
        if parts[4].lower() not in NON_WORDS:
            out.setdefault(parts[0], []).append((parts[4], start, start + duration))
    return {utt: _sorted_words(words) for utt, words in out.items()}


def read_textgrid(path: str, tier: str | None = None) -> list[Word]:
    """Words of a Praat TextGrid (long or short format), read with ``praatio``.

    Parameters
    ----------
    path : str
        The TextGrid file.
    tier : str, optional
        Tier to read; default: a tier named ``words`` (or ``word``, any case),
        else the first interval tier.

    Raises
    ------
    ValueError
        An unreadable file, or no such tier (the message names the file).
    """
    try:
        from praatio import textgrid
    except ImportError as err:
        raise ImportError(
            "TextGrid alignments need praatio: pip install praatio (or 'sense[analysis]')"
        ) from err
    try:
        grid = textgrid.openTextgrid(path, includeEmptyIntervals=False, reportingMode="silence")
    except Exception as err:  # noqa: BLE001 - praatio raises many types
        raise ValueError(f"{path}: not a readable TextGrid ({err})") from err
    interval_tiers = [t for t in grid.tiers if t.tierType == textgrid.INTERVAL_TIER]
    if tier is not None:
        chosen = next((t for t in interval_tiers if t.name == tier), None)
        if chosen is None:
            names = [t.name for t in interval_tiers]
            raise ValueError(f"{path}: no interval tier {tier!r} (found {names})")
    else:
        by_name = {t.name.lower(): t for t in interval_tiers}
        chosen = next((by_name[n] for n in WORD_TIERS if n in by_name), None)
        chosen = chosen or (interval_tiers[0] if interval_tiers else None)
        if chosen is None:
            raise ValueError(f"{path}: no interval tier")
    return _sorted_words(
        (e.label.strip(), e.start, e.end)
        for e in chosen.entries
        if e.label.strip().lower() not in NON_WORDS
    )


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(str(path)))[0]


class AlignmentFiles:
    """Word boundaries read from a CTM file, a TextGrid, or a folder of them.

    A CTM file is keyed by its utterance ids; a TextGrid by its file name
    without extension. :meth:`lookup` finds an utterance by its id, then by the
    name of its id or audio file without extension.

    Parameters
    ----------
    path : str
        A ``.ctm`` file, a ``.TextGrid`` file, or a folder searched
        recursively for both.
    tier : str, optional
        TextGrid tier to read (see :func:`read_textgrid`).

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        A file cannot be read, or a folder holds no alignment file.
    """

    def __init__(self, path: str, tier: str | None = None):
        self.path = path
        self.words: dict[str, list[Word]] = {}
        if os.path.isdir(path):
            files = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(path)
                for name in names
                if name.lower().endswith(CTM_EXTENSIONS + TEXTGRID_EXTENSIONS)
            )
            if not files:
                raise ValueError(f"{path}: no .ctm or .TextGrid file in this folder")
        elif os.path.isfile(path):
            files = [path]
        else:
            raise FileNotFoundError(f"{path}: no such alignment file or folder")
        for file in files:
            if file.lower().endswith(CTM_EXTENSIONS):
                self.words.update(read_ctm(file))
            elif file.lower().endswith(TEXTGRID_EXTENSIONS):
                self.words[_stem(file)] = read_textgrid(file, tier)
            else:
                raise ValueError(f"{file}: an alignment file is a .ctm or a .TextGrid")

    def __len__(self) -> int:
        return len(self.words)

    def lookup(self, utterance: str, audio_path: str | None = None) -> list[Word] | None:
        """The words of an utterance, or ``None`` when the files do not have it."""
        for key in (utterance, _stem(utterance), _stem(audio_path) if audio_path else None):
            if key is not None and key in self.words:
                return self.words[key]
        return None


# ---------------------------------------------------------------------------
# Forced alignment with a CTC model
# ---------------------------------------------------------------------------


def _char_tokens(word: str, vocab: Mapping[str, int]) -> list[int]:
    """Token ids of a word's characters; a character missing from the vocabulary
    is tried in the other case, then without its accents, then dropped."""
    ids = []
    for char in word:
        for candidate in (char, char.lower(), char.upper()):
            if candidate in vocab:
                ids.append(vocab[candidate])
                break
        else:
            base = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            for candidate in (base, base.lower(), base.upper()):
                if candidate and all(c in vocab for c in candidate):
                    ids.extend(vocab[c] for c in candidate)
                    break
    return ids


def align_emission(
    log_probs: torch.Tensor,
    words: Sequence[str],
    word_tokens: Sequence[Sequence[int]],
    blank: int,
    seconds_per_frame: float,
    delimiter: int | None = None,
) -> list[Word]:
    """Word boundaries from CTC log-probabilities by forced alignment.

    Parameters
    ----------
    log_probs : torch.Tensor
        [T, C] log-probabilities of the CTC model's frames.
    words : sequence of str
        The words of the transcript.
    word_tokens : sequence of sequence of int
        Token ids of each word (a word without tokens is left out).
    blank : int
        Id of the CTC blank.
    seconds_per_frame : float
        Duration of one frame of ``log_probs``.
    delimiter : int, optional
        Word-delimiter token put between words (``|`` of wav2vec2 vocabularies).

    Returns
    -------
    list of (str, float, float)
        From the start of the word's first token to the end of its last.

    Example
    -------
    >>> lp = torch.full((6, 3), -10.0)
    >>> for t, c in enumerate([1, 1, 0, 2, 2, 0]): lp[t, c] = 0.0
    >>> align_emission(lp, ["a", "b"], [[1], [2]], blank=0, seconds_per_frame=0.02)
    [('a', 0.0, 0.04), ('b', 0.06, 0.1)]
    """
    from torchaudio.functional import forced_align, merge_tokens

    kept = [(w, list(t)) for w, t in zip(words, word_tokens) if len(t) > 0]
    if not kept:
        return []
    targets, owner = [], []
    for i, (_, tokens) in enumerate(kept):
        if i and delimiter is not None:
            targets.append(delimiter)
            owner.append(None)
        targets.extend(tokens)
        owner.extend([i] * len(tokens))
    log_probs = log_probs.detach().float().cpu()
    repeats = sum(a == b for a, b in zip(targets, targets[1:]))
    if len(targets) + repeats > log_probs.shape[0]:
        raise ValueError(
            f"the transcript has {len(targets)} tokens for {log_probs.shape[0]} frames of audio"
        )
    path, scores = forced_align(
        log_probs.unsqueeze(0), torch.tensor([targets], dtype=torch.int32), blank=blank
    )
    spans = merge_tokens(path[0], scores[0].exp(), blank=blank)
    bounds: dict[int, list[int]] = {}
    for span, i in zip(spans, owner):
        if i is not None:
            bounds.setdefault(i, [span.start, span.end])[1] = span.end
    return [
        (kept[i][0], round(start * seconds_per_frame, 4), round(end * seconds_per_frame, 4))
        for i, (start, end) in sorted(bounds.items())
    ]


class CTCAligner:
    """Forced alignment of transcripts with a wav2vec2 CTC model (characters).

    Parameters
    ----------
    source : str
        Hub id or folder of a ``Wav2Vec2ForCTC`` model with its processor
        (feature extractor and ``Wav2Vec2CTCTokenizer``), e.g. a wav2vec2 /
        XLS-R model fine-tuned for the utterances' language.
    device : str
        Device to run the model on.

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.tiny import build_tiny_wav2vec2_ctc
    >>> aligner = CTCAligner(build_tiny_wav2vec2_ctc(tempfile.mkdtemp()))
    >>> [w for w, _, _ in aligner.align(torch.randn(16000), "le chat dort")]
    ['le', 'chat', 'dort']
    """

    def __init__(self, source: str, device: str = "cpu"):
        from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

        try:
            self.processor = Wav2Vec2Processor.from_pretrained(source)
            self.model = Wav2Vec2ForCTC.from_pretrained(source).to(device).eval()
        except (OSError, ValueError) as err:
            raise OSError(
                f"{source}: cannot load a wav2vec2 CTC model and processor ({err})"
            ) from err
        self.source, self.device = source, device
        tokenizer = self.processor.tokenizer
        self.vocab = tokenizer.get_vocab()
        self.blank = tokenizer.pad_token_id
        self.delimiter = self.vocab.get(getattr(tokenizer, "word_delimiter_token", None) or "|")
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)

    @torch.no_grad()
    def align(self, wav: torch.Tensor, text: str) -> list[Word]:
        """Word boundaries of ``text`` spoken in ``wav`` ([T] at the model's rate, 16 kHz).

        Words whose characters are all outside the model's vocabulary (e.g.
        digits) are left out.

        Raises
        ------
        ValueError
            No alignable word, or more tokens than the audio has frames.
        """
        words = text.split()
        tokens = [_char_tokens(w, self.vocab) for w in words]
        if not any(tokens):
            raise ValueError("no word of the transcript is in the CTC model's vocabulary")
        wav = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
        inputs = self.processor(wav.numpy(), sampling_rate=self.sample_rate, return_tensors="pt")
        logits = self.model(inputs.input_values.to(self.device)).logits[0]
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        seconds = wav.numel() / self.sample_rate / log_probs.shape[0]
        return align_emission(log_probs, words, tokens, self.blank, seconds, self.delimiter)


# ---------------------------------------------------------------------------
# WhisperX
# ---------------------------------------------------------------------------


def whisperx_available() -> bool:
    """True when the ``whisperx`` package is installed."""
    return importlib.util.find_spec("whisperx") is not None


class WhisperXAligner:
    """WhisperX's forced aligner (a wav2vec2 model per language, fetched by WhisperX).

    Only usable where ``whisperx`` is installed and its alignment models can
    be loaded (from the hub, or its cache).
    """

    def __init__(self, device: str = "cpu"):
        import whisperx

        self.whisperx, self.device = whisperx, device
        self._models: dict[str, tuple] = {}

    def align(self, wav: torch.Tensor, text: str, lang: str) -> list[Word]:
        """Word boundaries of ``text`` (language ``lang``) in ``wav`` ([T], 16 kHz)."""
        if lang not in self._models:
            self._models[lang] = self.whisperx.load_align_model(
                language_code=lang, device=self.device
            )
        model, metadata = self._models[lang]
        audio = torch.as_tensor(wav, dtype=torch.float32).reshape(-1).numpy()
        segment = {"text": text, "start": 0.0, "end": audio.size / SAMPLE_RATE}
        result = self.whisperx.align(
            [segment], model, metadata, audio, self.device, return_char_alignments=False
        )
        return _sorted_words(
            (w.get("word", w.get("text", "")).strip(), w["start"], w["end"])
            for w in result.get("word_segments", [])
            if "start" in w and "end" in w
        )


# ---------------------------------------------------------------------------
# All sources
# ---------------------------------------------------------------------------


class WordAligner:
    """Word boundaries of each utterance from the first source that gives them.

    Parameters
    ----------
    files : AlignmentFiles, optional
        Alignments given by the user.
    ctc : CTCAligner, optional
        Forced alignment of the transcripts.
    whisperx : WhisperXAligner, optional
        WhisperX, tried when ``ctc`` is not given.

    Example
    -------
    >>> WordAligner().words("utt1", {"words": [["oui", 0.1, 0.3]]}, None)
    ([('oui', 0.1, 0.3)], 'manifest', None)
    >>> WordAligner().words("utt1", {"text": "oui"}, None)
    (None, None, 'no alignment file, CTC model or WhisperX to align the transcript')
    """

    def __init__(
        self,
        files: AlignmentFiles | None = None,
        ctc: CTCAligner | None = None,
        whisperx: WhisperXAligner | None = None,
    ):
        self.files, self.ctc, self.whisperx = files, ctc, whisperx

    @property
    def sources(self) -> list[str]:
        """Names of the sources tried after the manifest's own words."""
        names = []
        if self.files is not None:
            names.append(f"file {self.files.path}")
        if self.ctc is not None:
            names.append(f"CTC model {self.ctc.source}")
        if self.whisperx is not None:
            names.append("WhisperX")
        return names

    def words(
        self, utterance: str, entry: Mapping, wav: torch.Tensor | None
    ) -> tuple[list[Word] | None, str | None, str | None]:
        """``(words, source, problem)`` of one utterance; ``words`` is ``None`` when
        no source has them, and ``problem`` says why."""
        if entry.get("words"):
            return _sorted_words(entry["words"]), "manifest", None
        if self.files is not None:
            found = self.files.lookup(utterance, entry.get("path"))
            if found is not None:
                return found, "file", None
        aligner = self.ctc if self.ctc is not None else self.whisperx
        if aligner is None:
            if self.files is not None:
                return None, None, f"not in {self.files.path}, and no CTC model or WhisperX"
            return None, None, "no alignment file, CTC model or WhisperX to align the transcript"
        text = (entry.get("text") or "").strip()
        if not text:
            return None, None, "no transcript to align"
        if wav is None:
            return None, None, "no audio to align"
        try:
            if aligner is self.ctc:
                return self.ctc.align(wav, text), "ctc", None
            return self.whisperx.align(wav, text, entry.get("lang") or "en"), "whisperx", None
        except Exception as err:  # noqa: BLE001 - one utterance's failure is reported
            return None, None, f"alignment failed ({type(err).__name__}: {err})"
