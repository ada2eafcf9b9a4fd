"""Sentence splitting of articles and transcripts, offline.

:func:`split_sentences` uses pySBD (rule-based sentence boundary
disambiguation, with language rules for French, English, German, Spanish,
Italian, Russian and others; pure Python, no model to download). It keeps
French abbreviations such as "M." and "Mme" inside their sentence.

Example
-------
>>> split_sentences("M. Dupont est arrivé. Il a dit : « Bonjour ! »", "fr")
['M. Dupont est arrivé.', 'Il a dit : « Bonjour ! »']
"""

from __future__ import annotations

import functools

#: pySBD's languages fall back to English rules otherwise.
FALLBACK_LANGUAGE = "en"


@functools.lru_cache(maxsize=16)
def _segmenter(language: str):
    import pysbd
    from pysbd.languages import LANGUAGE_CODES

    if language not in LANGUAGE_CODES:
        language = FALLBACK_LANGUAGE
    return pysbd.Segmenter(language=language, clean=False)


def split_sentences(text: str, language: str = "fr") -> list[str]:
    """The sentences of ``text`` (stripped, empty ones dropped).

    Parameters
    ----------
    text : str
        An article, a paragraph or a transcript.
    language : str
        ISO 639-1 code of its language (English rules for one pySBD lacks).

    Example
    -------
    >>> split_sentences("Le 3 mars, Mme Martin est partie. Elle revient demain.")
    ['Le 3 mars, Mme Martin est partie.', 'Elle revient demain.']
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    if not text.strip():
        return []
    return [s.strip() for s in _segmenter(language).segment(text) if s.strip()]
