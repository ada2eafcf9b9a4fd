"""The attention analysis of section VII over a manifest of utterances (``sense attention``).

:func:`analyze` takes a loaded :class:`sense.inference.SENSE` model and
utterances, and writes into one folder:

- ``figure2_position.png``, ``position_curve.csv|json``: the mean attention
  logit against relative position, per language, with a 95% band (Figure 2);
- ``figure3_<id>.png`` (and ``figure4_<id>.png`` for the same meaning in
  another language): attention weights over time with the voice activity
  curve and word boundaries (Figures 3 and 4);
- ``word_scores.csv``, ``words.json``: the attention-logit sum of every aligned
  word, the top occurrences and the most frequent words (Table IX), content
  against function words;
- ``pooling.md|csv|json`` when retrieval pairs are given: R@1 with the learned
  attention against uniform mean pooling over the same frames
  (:mod:`sense.analysis.pooling`);
- ``summary.json`` (every number) and ``report.md`` (the tables, also returned;
  :mod:`sense.analysis.report`).

An utterance is a manifest entry: ``{"path", "lang", "text", "start",
"duration", "words", "parallel"}`` (all but ``path`` optional; the audio entries
of :mod:`sense.evaluation` manifests are such entries). ``words`` holds exact
boundaries ``[[word, start_s, end_s], ...]`` relative to the utterance;
``parallel`` maps a language to the id of the same meaning spoken in it
(Figure 4). Utterances without word boundaries still count in Figure 2 and the
first-frames mass.

Example
-------
>>> from sense.inference import SENSE  # doctest: +SKIP
>>> model = SENSE.from_hparams("path/to/model")  # doctest: +SKIP
>>> utterances, _ = load_utterances(["manifest.json"])  # doctest: +SKIP
>>> summary = analyze(model, utterances, "attention_out")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sense.analysis.alignment import Word, WordAligner
from sense.analysis.attention import (
    EDGE_FRAMES,
    TOP_WORDS,
    WordScore,
    edge_mass,
    frequent_words,
    nonspeech_mass,
    normalize_word,
    position_curve,
    top_occurrences,
    word_class,
    word_class_stats,
    word_scores,
)
from sense.analysis.pooling import compare_pooling
from sense.analysis.report import REPORT_POSITIONS, format_report
from sense.analysis.settings import AnalysisSettings, FunctionWords, PoolingComparison
from sense.dataio import AUDIO_EXTENSIONS, AudioError, find_audio_files
from sense.evaluation import AudioItem
from sense.formats import ATTENTION_OUTPUT

logger = logging.getLogger(__name__)

UNKNOWN_LANG = "und"
#: Utterances read into memory at a time by :func:`extract`.
EXTRACT_GROUP = 64


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def _manifest_entries(path: str) -> dict[str, dict]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON manifest ({err})") from err
    if isinstance(data, list):
        if not all(isinstance(e, dict) and "id" in e for e in data):
            raise ValueError(f"{path}: a list manifest holds objects with an 'id'")
        data = {str(e["id"]): {k: v for k, v in e.items() if k != "id"} for e in data}
    if not isinstance(data, dict) or not all(isinstance(e, dict) for e in data.values()):
        raise ValueError(f"{path}: a manifest is a JSON object of entries keyed by id")
    folder = os.path.dirname(os.path.abspath(path))
    out = {}
    for key, entry in data.items():
        if entry.get("modality", "audio") != "audio":
            continue  # text entries of retrieval manifests
        if not entry.get("path"):
            raise ValueError(f"{path}: entry {key!r} has no 'path'")
        out[str(key)] = {**entry, "path": os.path.join(folder, os.path.expanduser(entry["path"]))}
    return out


def _failure_reason(key: str, err: Exception) -> str:
    """The problem of an utterance; the file is named only when the id does not name it."""
    if isinstance(err, AudioError) and os.path.abspath(key) == os.path.abspath(err.path):
        return str(err).removeprefix(f"{err.path}: ")
    return str(err)


def load_utterances(inputs: Sequence[str]) -> tuple[dict[str, dict], list[tuple[str, str]]]:
    """Utterances from JSON manifests, audio files and folders of audio.

    A ``.json`` input is a manifest (``{id: entry}``, or a list of entries with
    an ``id``; relative paths are relative to the manifest); an audio file is
    an utterance whose id is its path; a folder is searched recursively.

    Returns
    -------
    utterances : dict
        Id -> entry, in input order.
    failures : list of (str, str)
        Inputs that could not be used, with the reason.

    Raises
    ------
    ValueError
        A manifest that cannot be read (the message names it).
    """
    utterances: dict[str, dict] = {}
    failures: list[tuple[str, str]] = []
    for item in inputs:
        if item.lower().endswith(".json") and os.path.isfile(item):
            utterances.update(_manifest_entries(item))
        elif os.path.isdir(item):
            try:
                for path in find_audio_files(item):
                    utterances[os.path.normpath(path)] = {"path": os.path.abspath(path)}
            except ValueError as err:
                failures.append((item, str(err).removeprefix(f"{item}: ")))
        elif not os.path.exists(item):
            failures.append((item, "no such file or folder"))
        elif item.lower().endswith(AUDIO_EXTENSIONS):
            utterances[item] = {"path": os.path.abspath(item)}
        else:
            failures.append((item, "neither a .json manifest, an audio file nor a folder"))
    return utterances, failures


def default_function_words(lang: str) -> frozenset[str] | None:
    """Function words of a language from the ``stop-words`` package (``None`` if it has none)."""
    try:
        from stop_words import StopWordError, get_stop_words
    except ImportError:
        return None
    try:
        return frozenset(normalize_word(w) for w in get_stop_words(lang))
    except StopWordError:
        return None


def read_word_list(path: str) -> frozenset[str]:
    """Normalised words of a text file, one a line (``#`` starts a comment)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the word list ({err})") from err
    words = frozenset(normalize_word(line.split("#", 1)[0].strip()) for line in lines) - {""}
    if not words:
        raise ValueError(f"{path}: the word list is empty")
    return words


def build_aligner(
    alignments: str | None = None,
    tier: str | None = None,
    align_model: str | None = None,
    whisperx: bool = True,
    device: str = "cpu",
) -> WordAligner:
    """The word-boundary sources of a run, in the order of preference.

    Parameters
    ----------
    alignments : str, optional
        A CTM file, a TextGrid, or a folder of them.
    tier : str, optional
        TextGrid tier of the words.
    align_model : str, optional
        Hub id or folder of a wav2vec2 CTC model for forced alignment.
    whisperx : bool
        Use WhisperX, when it is installed and no ``align_model`` is given.
    device : str
        Device of the aligners.

    Raises
    ------
    FileNotFoundError, ValueError, OSError
        An alignment file or CTC model that cannot be read (the message names it).
    """
    from sense.analysis.alignment import (
        AlignmentFiles,
        CTCAligner,
        WhisperXAligner,
        whisperx_available,
    )

    files = AlignmentFiles(alignments, tier) if alignments else None
    ctc = CTCAligner(align_model, device=device) if align_model else None
    use_whisperx = ctc is None and whisperx and whisperx_available()
    return WordAligner(files, ctc, WhisperXAligner(device=device) if use_whisperx else None)


def load_vad(enabled: bool = True):
    """The Silero VAD, or ``None`` (with a warning) when it is off or not installed."""
    if not enabled:
        return None
    from sense.analysis.vad import SileroVAD

    try:
        return SileroVAD()
    except ImportError as err:
        logger.warning("no voice activity curve: %s", err)
        return None


# ---------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------


@dataclass
class UtteranceAttention:
    """The attention of the pooling over one utterance, with what is known of it."""

    id: str
    lang: str
    text: str
    times: np.ndarray
    logits: np.ndarray
    duration: float
    words: list[Word] | None = None
    word_source: str | None = None
    word_problem: str | None = None
    vad: tuple[np.ndarray, np.ndarray] | None = None
    parallel: dict[str, str] = field(default_factory=dict)

    @property
    def weights(self) -> np.ndarray:
        e = np.exp(self.logits - self.logits.max())
        return e / e.sum()


def extract(
    model,
    utterances: Mapping[str, Mapping],
    aligner: WordAligner | None = None,
    vad=None,
    progress: bool = False,
    batch_size: int = 16,
) -> tuple[list[UtteranceAttention], list[tuple[str, str]]]:
    """Attention logits, word boundaries and voice activity of every utterance.

    Parameters
    ----------
    model : sense.inference.SENSE
        The model.
    utterances : dict
        Id -> manifest entry.
    aligner : WordAligner, optional
        Where word boundaries come from (by default only the entries' ``words``).
    vad : sense.analysis.vad.SileroVAD, optional
        Voice activity detector.
    progress : bool
        Show a progress bar.
    batch_size : int
        Utterances (or windows) per forward pass of the model.

    Returns
    -------
    records : list of UtteranceAttention
    failures : list of (str, str)
        Utterances that could not be read or encoded, with the reason.
    """
    aligner = aligner or WordAligner()
    records, failures = [], []
    items = list(utterances.items())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc="attention", unit="utt", leave=False)
    for g in range(0, len(items), EXTRACT_GROUP):
        group, wavs = [], []
        for key, entry in items[g : g + EXTRACT_GROUP]:
            try:
                item = AudioItem(entry["path"], entry.get("start"), entry.get("duration"))
                wavs.append(item.load(model.sample_rate))
                group.append((key, entry))
            except (AudioError, ValueError, RuntimeError) as err:
                failures.append((key, _failure_reason(key, err)))
        attentions = model.attention_waveforms(wavs, batch_size=batch_size)
        for (key, entry), wav, att in zip(group, wavs, attentions):
            if isinstance(att, str):
                failures.append((key, f"{entry['path']}: {att}"))
                continue
            words, source, problem = aligner.words(key, entry, wav)
            records.append(
                UtteranceAttention(
                    id=key,
                    lang=entry.get("lang") or UNKNOWN_LANG,
                    text=entry.get("text") or "",
                    times=att.times.double().numpy(),
                    logits=att.logits.double().numpy(),
                    duration=float(att.duration),
                    words=words,
                    word_source=source,
                    word_problem=problem,
                    vad=vad.speech_probabilities(wav, model.sample_rate) if vad else None,
                    parallel=dict(entry.get("parallel") or {}),
                )
            )
        if bar is not None:
            bar.update(len(items[g : g + EXTRACT_GROUP]))
    if bar is not None:
        bar.close()
    return records, failures


# ---------------------------------------------------------------------------
# The analysis
# ---------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(os.path.basename(text))[0])[:80]


def _by_lang(records: Sequence[UtteranceAttention]) -> dict[str, list[UtteranceAttention]]:
    groups: dict[str, list[UtteranceAttention]] = {}
    for r in records:
        groups.setdefault(r.lang, []).append(r)
    return dict(sorted(groups.items()))


def choose_examples(records: Sequence[UtteranceAttention], wanted: Sequence[str] = ()) -> list:
    """The utterances of Figures 3 and 4.

    Those asked for; else the first utterance with word boundaries whose
    parallel utterance (same meaning, another language) was analysed too,
    preferring a parallel one with word boundaries, and that one; else the
    first utterance with word boundaries; else the first utterance.
    """
    by_id = {r.id: r for r in records}
    if wanted:
        missing = [w for w in wanted if w not in by_id]
        if missing:
            raise ValueError(f"example utterance(s) not analysed: {', '.join(missing)}")
        return [by_id[w] for w in wanted]
    aligned = [r for r in records if r.words]
    for need_words in (True, False):
        for r in aligned:
            partners = [by_id[p] for p in r.parallel.values() if p in by_id]
            partner = next((p for p in partners if p.words or not need_words), None)
            if partner is not None:
                return [r, partner]
    first = aligned[0] if aligned else (records[0] if records else None)
    return [first] if first is not None else []


def _function_words_of(function_words: FunctionWords, lang: str):
    if function_words is None:
        return default_function_words(lang)
    if callable(function_words):
        return function_words(lang)
    return function_words.get(lang)


def analyze(
    model,
    utterances: Mapping[str, Mapping],
    output_folder: str,
    aligner: WordAligner | None = None,
    vad=None,
    examples: Sequence[str] = (),
    comparison: PoolingComparison | None = None,
    settings: AnalysisSettings | None = None,
    progress: bool = False,
) -> dict:
    """Run the whole analysis and write its figures and tables (module docstring).

    Parameters
    ----------
    model : sense.inference.SENSE
        The trained model.
    utterances : dict
        Id -> manifest entry (:func:`load_utterances`).
    output_folder : str
        Where everything is written.
    aligner : WordAligner, optional
        Sources of word boundaries (default: the entries' ``words`` only).
    vad : sense.analysis.vad.SileroVAD, optional
        Voice activity for the figures and the non-speech mass.
    examples : sequence of str
        Ids of the utterances of Figure 3 (the first) and Figure 4 (the
        others); default: :func:`choose_examples`.
    comparison : PoolingComparison, optional
        Prepared retrieval pairs, the model's source and the embedding cache
        of the retrieval comparison of poolings (:func:`compare_pooling`);
        ``None``: no comparison.
    settings : AnalysisSettings, optional
        Edge frames, position grid, Table IX size, function words, batch
        size and VAD scope (default: :class:`AnalysisSettings`'s).
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        The summary (also in ``summary.json``); ``summary["report"]`` is the
        Markdown report (also in ``report.md``).
    """
    settings = settings or AnalysisSettings()
    edge_frames, batch_size = settings.edge_frames, settings.batch_size
    from sense.plots import plot_attention, plot_position_curves

    os.makedirs(output_folder, exist_ok=True)
    records, failures = extract(
        model, utterances, aligner, vad if settings.runs_vad_on_all else None, progress, batch_size
    )
    if not records:
        raise ValueError(
            "no utterance could be analysed: " + "; ".join(f"{k}: {why}" for k, why in failures[:5])
        )
    groups = _by_lang(records)
    summary: dict = {
        "format": ATTENTION_OUTPUT,
        "utterances": len(records),
        "skipped": [{"id": k, "reason": why} for k, why in failures],
        "languages": {},
        "figures": {},
    }

    curves = {
        lang: position_curve((r.logits for r in rs), settings.grid_size)
        for lang, rs in groups.items()
    }
    summary["figures"]["figure2"] = plot_position_curves(
        curves, os.path.join(output_folder, "figure2_position.png")
    )
    _write_curves(curves, output_folder)

    all_scores: list[WordScore] = []
    for lang, rs in groups.items():
        fw = _function_words_of(settings.function_words, lang)
        info, scores = language_summary(rs, curves[lang], edge_frames, settings.top, fw)
        summary["languages"][lang] = info
        all_scores.extend(scores)
    if all_scores:
        _write_word_scores(all_scores, output_folder)
    else:
        logger.warning(
            "no utterance has word boundaries: the analysis is the attention curve and the "
            "first-frames mass only (give an alignment file or a CTC model for Table IX)"
        )
    for n, r in enumerate(choose_examples(records, examples)):
        if vad is not None and r.vad is None:
            entry = utterances[r.id]
            wav = AudioItem(entry["path"], entry.get("start"), entry.get("duration")).load(
                model.sample_rate
            )
            r.vad = vad.speech_probabilities(wav, model.sample_rate)
        figure = "figure3" if n == 0 else "figure4"
        summary["figures"][f"{figure}_{r.id}"] = plot_attention(
            r.times.tolist(),
            r.weights.tolist(),
            os.path.join(output_folder, f"{figure}_{_slug(r.id)}.png"),
            r.words or (),
            title=f"[{r.lang}] {r.text}" if r.text else r.id,
            duration=r.duration,
            vad=r.vad,
        )

    if comparison is not None and comparison.pairs:
        summary["pooling"] = compare_pooling(
            model,
            comparison.source,
            comparison.pairs,
            output_folder,
            cache_folder=comparison.cache_in(output_folder),
            batch_size=batch_size,
        )

    summary["report"] = format_report(summary, edge_frames)
    _write_json(os.path.join(output_folder, "summary.json"), summary)
    with open(os.path.join(output_folder, "report.md"), "w", encoding="utf-8") as f:
        f.write(summary["report"])
    word_keys = ("top_occurrences", "frequent_words", "word_classes")
    _write_json(
        os.path.join(output_folder, "words.json"),
        {
            lang: {k: info[k] for k in word_keys if k in info}
            for lang, info in summary["languages"].items()
        },
    )
    return summary


def language_summary(
    records: Sequence[UtteranceAttention],
    curve,
    edge_frames: int = EDGE_FRAMES,
    top: int = TOP_WORDS,
    function_words: Collection[str] | None = None,
) -> tuple[dict, list[WordScore]]:
    """The numbers of one language: curve points, edge and non-speech masses, Table IX.

    Returns the summary of the language and the scores of its aligned words
    (classified as content or function words when ``function_words`` is given).
    """
    logits = [r.logits for r in records]
    info: dict = {
        "utterances": len(records),
        "position_curve": {
            f"{p:.2f}": float(np.interp(p, curve.grid, curve.mean)) for p in REPORT_POSITIONS
        },
        "first_frames": edge_mass(logits, edge_frames, "first").to_dict(),
        "last_frames": edge_mass(logits, edge_frames, "last").to_dict(),
    }
    silence = nonspeech_mass(
        (r.times, r.logits, r.vad[0], r.vad[1]) for r in records if r.vad is not None
    )
    if silence is not None:
        info["nonspeech"] = silence.to_dict()
    aligned = [r for r in records if r.words]
    info["aligned"] = len(aligned)
    info["word_sources"] = _count(r.word_source for r in aligned)
    info["alignment_problems"] = _count(r.word_problem for r in records if not r.words)
    scores = [s for r in aligned for s in word_scores(r.times, r.logits, r.words, r.id, r.lang)]
    if scores:
        info["top_occurrences"] = [s.to_dict() for s in top_occurrences(scores, top)]
        info["frequent_words"] = [w.to_dict() for w in frequent_words(scores, top)]
        if function_words:
            info["word_classes"] = {
                k: v.to_dict() for k, v in word_class_stats(scores, function_words).items()
            }
            for s in scores:
                s.word_class = word_class(s.word, function_words)
    return info, scores


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        if v:
            out[v] = out.get(v, 0) + 1
    return out


def _write_json(path: str, data) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")


def _write_curves(curves: Mapping, folder: str) -> None:
    _write_json(
        os.path.join(folder, "position_curve.json"), {k: c.to_dict() for k, c in curves.items()}
    )
    langs = list(curves)
    grid = next(iter(curves.values())).grid
    with open(os.path.join(folder, "position_curve.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["relpos"] + [f"{lang}_{k}" for lang in langs for k in ("mean", "low", "high", "n")]
        )
        for i, p in enumerate(grid):
            row = [f"{p:.4f}"]
            for lang in langs:
                c = curves[lang]
                row += [f"{c.mean[i]:.6f}", f"{c.low[i]:.6f}", f"{c.high[i]:.6f}", c.count]
            writer.writerow(row)


def _write_word_scores(scores: Sequence[WordScore], folder: str) -> None:
    columns = ["utterance", "lang", "word", "start", "end", "frames", "logit_sum", "mean_logit"]
    columns += ["centred_logit", "weight", "word_class"]
    with open(os.path.join(folder, "word_scores.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for s in scores:
            writer.writerow(
                [s.utterance, s.lang, s.word, f"{s.start:.3f}", f"{s.end:.3f}", s.frames]
                + [f"{s.logit_sum:.6f}", f"{s.mean_logit:.6f}", f"{s.centred_logit:.6f}"]
                + [f"{s.weight:.6f}", s.word_class]
            )
