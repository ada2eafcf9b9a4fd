"""ZeroST's Table 1 harness: BLEU per direction, averaged per source language.

For each source language ``L`` the paper reports BLEU-4 (sacrebleu) averaged
over the directions ``L -> L'``; one row per system: ZeroST, the cascade
(ASR -> NLLB) and the NLLB topline (ground-truth transcript -> NLLB), all
scored by the same code. :func:`translate_directions` runs a system over
the direction manifests (one ``<src>-<tgt>_<split>.csv`` per direction, columns
:data:`DIRECTION_FIELDS`: what the recipe's ``europarl_prepare.py`` writes
from Europarl-ST, the demo from its held-out clips, and
:func:`read_direction_manifests` finds in a folder); :func:`add_system` fills a
:class:`sense.translation.metrics.BleuTable` (one column per source language
and their average) from per-direction hypotheses; :func:`nllb_translate_texts`
is the text half of the topline and of the cascade, :class:`WhisperASR`
its speech half; :func:`zerost_translate_rows` translates a direction's
manifest rows with a trained ZeroST.

Example
-------
>>> from sense.translation.metrics import BleuTable
>>> table = BleuTable("Europarl-ST")
>>> same = ["le chat dort sur le canapé rouge"]
>>> hyps = {("en", "fr"): (same, same), ("en", "de"): (["x"], ["die Katze schläft"])}
>>> {k: round(v, 2) for k, v in add_system(table, "topline", hyps).items()}
{('en', 'fr'): 100.0, ('en', 'de'): 0.0}
>>> round(table.value("topline", "en"), 2), round(table.value("topline", AVERAGE), 2)
(50.0, 50.0)
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import torch
from tqdm import tqdm

from sense.dataio import load_audio
from sense.prepare import read_manifest
from sense.translation.metrics import BleuTable, corpus_bleu
from sense.zerost.brain import translate

DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_NEW_TOKENS = 200
#: Whisper's prompt: start of transcript, language, task, no timestamps.
WHISPER_PROMPT_TOKENS = 4
#: Column of the mean over source languages (Table 1's "Avg.").
AVERAGE = "avg"
TABLE1_TITLE = "BLEU-4 on Europarl-ST, averaged over the directions from each language (Table 1)"
TABLE2_TITLE = "Average BLEU-4 on Europarl-ST by number of queries (Table 2)"
#: Columns of a direction manifest; languages are NLLB codes.
DIRECTION_FIELDS = (
    "ID",
    "duration",
    "wav",
    "language",
    "transcript",
    "translation",
    "target_language",
)


def direction_manifest_name(src: str, tgt: str, split: str) -> str:
    """File name of a direction's manifest: ``<src>-<tgt>_<split>.csv``."""
    return f"{src}-{tgt}_{split}.csv"


def read_direction_manifests(folder: str, split: str = "test") -> dict[str, str]:
    """``{"<src>-<tgt>": path}`` of the ``split`` manifests in ``folder``.

    Raises
    ------
    FileNotFoundError
        ``folder`` holds none (naming it).
    """
    pattern = re.compile(rf"^([a-z]+)-([a-z]+)_{re.escape(split)}\.csv$")
    found = {}
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            match = pattern.match(name)
            if match:
                found[f"{match[1]}-{match[2]}"] = os.path.join(folder, name)
    if not found:
        raise FileNotFoundError(f"{folder}: no <src>-<tgt>_{split}.csv manifests")
    return found


def add_system(
    table: BleuTable, system: str, directions: Mapping[tuple[str, str], tuple[list, list]]
) -> dict[tuple[str, str], float]:
    """Score each ``(src, tgt): (hypotheses, references)``; add per-source means to ``table``.

    The row also gets the mean of the per-source means (column :data:`AVERAGE`).
    Returns the BLEU of each direction.
    """
    scores = {pair: corpus_bleu(hyps, refs) for pair, (hyps, refs) in directions.items()}
    by_source = defaultdict(list)
    for (src, _), bleu in scores.items():
        by_source[src].append(bleu)
    means = [sum(values) / len(values) for values in by_source.values()]
    for src, mean in zip(by_source, means):
        table.add(system, src, mean)
    if means:
        table.add(system, AVERAGE, sum(means) / len(means))
    return scores


def translate_directions(
    manifests: Mapping[str, str], translate: Callable[[list[dict]], list[str]], desc: str = ""
) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
    """Run ``translate`` on each direction's rows: ``{(src, tgt): (hypotheses, references)}``.

    Parameters
    ----------
    manifests : dict
        ``"<src>-<tgt>"`` -> manifest path (columns :data:`DIRECTION_FIELDS`;
        :func:`read_direction_manifests`). Empty directions are left out.
    translate : callable
        Rows of one direction -> one hypothesis per row.
    desc : str
        Progress bar label.
    """
    out = {}
    for direction, path in tqdm(sorted(manifests.items()), desc=desc or "directions"):
        rows = read_manifest(path)
        if rows:
            src, tgt = direction.split("-")
            out[(src, tgt)] = (translate(rows), [row["translation"] for row in rows])
    return out


@torch.no_grad()
def nllb_translate_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    src_lang: str,
    tgt_lang: str,
    beam_size: int = 5,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> list[str]:
    """Translate ``texts`` with an NLLB ``M2M100ForConditionalGeneration`` (codes like ``eng_Latn``).

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoTokenizer, M2M100ForConditionalGeneration
    >>> from sense.demo.tiny import build_tiny_nllb
    >>> path = build_tiny_nllb(tempfile.mkdtemp())
    >>> model = M2M100ForConditionalGeneration.from_pretrained(path)
    >>> tok = AutoTokenizer.from_pretrained(path)
    >>> len(nllb_translate_texts(model, tok, ["le chat"], "fra_Latn", "eng_Latn", 1, max_new_tokens=3))
    1
    """
    tokenizer.src_lang = src_lang
    forced = tokenizer.convert_tokens_to_ids(tgt_lang)
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[start : start + batch_size]), return_tensors="pt", padding=True
        ).to(device)
        ids = model.generate(
            **batch,
            forced_bos_token_id=forced,
            num_beams=beam_size,
            do_sample=False,
            max_new_tokens=max_new_tokens,
        )
        out.extend(
            " ".join(t.split()) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)
        )
    return out


class WhisperASR:
    """Whisper speech recognition, the cascade's first half: waveforms -> transcripts.

    Parameters
    ----------
    source : str
        Hub id or folder of a ``WhisperForConditionalGeneration`` checkpoint
        with its processor (``openai/whisper-large-v3``).
    device : str

    Example
    -------
    >>> import tempfile
    >>> from sense.demo.tiny import build_tiny_whisper_asr
    >>> asr = WhisperASR(build_tiny_whisper_asr(tempfile.mkdtemp()))
    >>> len(asr.transcribe([torch.randn(16000)], "fr", beam_size=1, max_new_tokens=3))
    1
    """

    def __init__(self, source: str, device: str = "cpu"):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        try:
            self.processor = WhisperProcessor.from_pretrained(source)
            model = WhisperForConditionalGeneration.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise OSError(f"WhisperASR: cannot load {source!r}: {err}") from err
        self.model = model.to(device).eval()
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)

    @torch.no_grad()
    def transcribe(
        self,
        wavs: Sequence[torch.Tensor],
        language: str,
        beam_size: int = 5,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> list[str]:
        """Transcribe 1-D 16 kHz waveforms spoken in ``language`` (Whisper's code, ``"fr"``).

        ``max_new_tokens`` is capped by the decoder's positions less the prompt.
        """
        device = next(self.model.parameters()).device
        limit = self.model.config.max_target_positions - WHISPER_PROMPT_TOKENS
        max_new_tokens = min(max_new_tokens, limit)
        out = []
        for start in range(0, len(wavs), batch_size):
            features = self.processor.feature_extractor(
                [w.float().numpy() for w in wavs[start : start + batch_size]],
                sampling_rate=self.sample_rate,
                return_tensors="pt",
                return_attention_mask=True,
            ).to(device)
            ids = self.model.generate(
                features.input_features.to(self.model.dtype),
                attention_mask=features.attention_mask,
                language=language,
                task="transcribe",
                num_beams=beam_size,
                max_new_tokens=max_new_tokens,
            )
            texts = self.processor.batch_decode(ids, skip_special_tokens=True)
            out.extend(" ".join(t.split()) for t in texts)
        return out


def cascade_translate_rows(
    asr: WhisperASR,
    model,
    tokenizer,
    rows: Sequence[dict],
    language: str,
    transcripts: dict,
    beam_size: int = 5,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> list[str]:
    """Whisper ASR -> NLLB text translation of a direction's rows.

    ``transcripts`` (``wav -> text``) keeps each segment's recognition for
    the other directions from the same source; ``language`` is Whisper's code.
    """
    todo = sorted({row["wav"] for row in rows} - set(transcripts))
    texts = asr.transcribe(
        [load_audio(w) for w in todo], language, beam_size, batch_size, max_new_tokens
    )
    transcripts.update(zip(todo, texts))
    return nllb_translate_texts(
        model,
        tokenizer,
        [transcripts[row["wav"]] for row in rows],
        rows[0]["language"],
        rows[0]["target_language"],
        beam_size,
        batch_size,
        max_new_tokens,
    )


def zerost_translate_rows(
    encoder,
    qformer,
    decoder,
    rows: Sequence[dict],
    beam_size: int = 5,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> list[str]:
    """Translate manifest rows (``wav``, ``target_language``) with a trained ZeroST."""
    device = next(qformer.parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        langs = {row["target_language"] for row in chunk}
        if len(langs) != 1:
            raise ValueError(f"one target language per batch, got {sorted(langs)}")
        wavs = [load_audio(row["wav"]) for row in chunk]
        lens = torch.tensor([len(w) for w in wavs], dtype=torch.float32)
        padded = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True).to(device)
        out.extend(
            translate(
                encoder,
                qformer,
                decoder,
                padded,
                (lens / lens.max()).to(device),
                langs.pop(),
                beam_size,
                max_new_tokens,
            )
        )
    return out


__all__ = [
    "AVERAGE",
    "DIRECTION_FIELDS",
    "TABLE1_TITLE",
    "TABLE2_TITLE",
    "WhisperASR",
    "cascade_translate_rows",
    "add_system",
    "direction_manifest_name",
    "nllb_translate_texts",
    "read_direction_manifests",
    "translate_directions",
    "zerost_translate_rows",
]
