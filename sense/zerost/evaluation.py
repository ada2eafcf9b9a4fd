"""ZeroST's Table 1 harness: BLEU per direction, averaged per source language.

For each source language ``L`` the paper reports BLEU-4 (sacrebleu) averaged
over the directions ``L -> L'``; one row per system: ZeroST, the cascade
(ASR -> NLLB) and the NLLB topline (ground-truth transcript -> NLLB), all
scored by the same code. :func:`add_system` fills a
:class:`sense.translation.bleu.BleuTable` (one column per source language)
from per-direction hypotheses; :func:`nllb_translate_texts` is the text half
of the topline and of the cascade; :func:`zerost_translate_rows` translates a
direction's manifest rows with a trained ZeroST.

Example
-------
>>> from sense.translation.bleu import BleuTable
>>> table = BleuTable("Europarl-ST")
>>> same = ["le chat dort sur le canapé rouge"]
>>> hyps = {("en", "fr"): (same, same), ("en", "de"): (["x"], ["die Katze schläft"])}
>>> {k: round(v, 2) for k, v in add_system(table, "topline", hyps).items()}
{('en', 'fr'): 100.0, ('en', 'de'): 0.0}
>>> round(table.value("topline", "en"), 2)
50.0
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import torch

from sense.dataio import load_audio
from sense.translation.bleu import BleuTable, corpus_bleu
from sense.zerost.brain import translate

DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_NEW_TOKENS = 200


def add_system(
    table: BleuTable, system: str, directions: Mapping[tuple[str, str], tuple[list, list]]
) -> dict[tuple[str, str], float]:
    """Score each ``(src, tgt): (hypotheses, references)``; add per-source means to ``table``.

    Returns the BLEU of each direction.
    """
    scores = {pair: corpus_bleu(hyps, refs) for pair, (hyps, refs) in directions.items()}
    by_source = defaultdict(list)
    for (src, _), bleu in scores.items():
        by_source[src].append(bleu)
    for src, values in by_source.items():
        table.add(system, src, sum(values) / len(values))
    return scores


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
    >>> from sense.testing.tiny import build_tiny_nllb
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


__all__ = ["add_system", "nllb_translate_texts", "zerost_translate_rows"]
