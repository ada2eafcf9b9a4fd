"""Transcripts enriched with semantic labels, one character per symbol.

The SLU output of a CTC model is the transcript with each entity or slot
*opened by a character specific to its type* and *closed by one shared
closing character* (Ghannay et al., 2018)::

    transcript  "wake me up at seven am"
    spans       [("time", 14, 22)]
    annotated   "wake me up at Ⓣseven am⟩"      (Ⓣ: the opener of "time")

The markers are glued to the value (no space is added), so removing them
gives the transcript back exactly. :class:`LabelMarkup` holds the type ->
opener map and the output alphabet, both built from the training manifests
(:meth:`LabelMarkup.build`) and saved with the model as JSON.

Openers are circled letters and digits (``Ⓐ``...``ⓩ``, ``①``...``⑳``), then
private-use characters, skipping any character that occurs in the training
transcripts; the closer is ``⟩`` unless the transcripts use it.

Decoding (:meth:`LabelMarkup.decode`) never fails on a malformed output and
follows SpeechBrain's ``extract_concepts_values`` (the MEDIA evaluation):

* an opener while a span is open closes that span and opens a new one;
* a span still open at the end is closed there;
* a closer outside a span is dropped;
* values are whitespace-normalised; an empty value is kept as ``""``.

Characters not in the alphabet (an unseen letter in a dev set, another
script in a zero-shot test) are mapped to the unknown symbol when a target is
turned into ids (:meth:`LabelMarkup.to_ids`), so the loss still counts them,
and the unknown symbol is dropped when ids are turned back into text.

Example
-------
>>> markup = LabelMarkup.build([("wake me up at seven", [("time", 14, 19)])])
>>> target = markup.encode("wake me up at seven", [("time", 14, 19)])
>>> target
'wake me up at Ⓐseven⟩'
>>> markup.decode(target)
('wake me up at seven', [('time', 'seven')])
>>> markup.decode("Ⓐseven ⟩⟩ Ⓐ")  # a stray closer, an empty unclosed span
('seven', [('time', 'seven'), ('time', '')])
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sense.io import write_text_atomic

#: CTC blank (index 0 of the alphabet) and the symbol of unseen characters (index 1).
BLANK = "<blank>"
UNKNOWN = "<unk>"
#: Preferred shared closing character.
CLOSER = "⟩"
#: Candidate openers, in order: circled letters, circled digits, then private use.
OPENER_CANDIDATES = (
    [chr(c) for c in range(0x24B6, 0x24EA)]  # Ⓐ..Ⓩ ⓐ..ⓩ
    + [chr(c) for c in range(0x2460, 0x2474)]  # ①..⑳
    + [chr(c) for c in range(0xE000, 0xF900)]  # private use area
)
CLOSER_CANDIDATES = (CLOSER, "⟧", "⟫", "\uf8ff")
FORMAT = "sense.slu.markup"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Span:
    """A labelled span found in an annotated sequence.

    Attributes
    ----------
    label : str
        Type of the entity or slot.
    value : str
        Its text, whitespace-normalised.
    start, end : int
        Positions of the opener and of the symbol after the value (the closer,
        or the next opener, or the end) in the decoded symbol sequence.
    """

    label: str
    value: str
    start: int
    end: int


def normalize_space(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends.

    Example
    -------
    >>> normalize_space("  two   words ")
    'two words'
    """
    return " ".join(text.split())


def check_spans(transcript: str, spans: Sequence[Sequence], where: str = "") -> None:
    """Raise ``ValueError`` unless ``spans`` are sorted, disjoint ``[label, begin, end]`` in range.

    Example
    -------
    >>> check_spans("abc", [["x", 0, 1], ["y", 1, 3]])
    >>> check_spans("abc", [["x", 0, 2], ["y", 1, 3]])
    Traceback (most recent call last):
    ...
    ValueError: span ['y', 1, 3] overlaps the span before it
    """
    prefix = f"{where}: " if where else ""
    last_end = 0
    for span in spans:
        if len(span) != 3:
            raise ValueError(f"{prefix}span {list(span)} is not [label, begin, end]")
        label, begin, end = span
        if not isinstance(label, str) or not label or any(c.isspace() for c in label):
            raise ValueError(f"{prefix}span {list(span)}: the label must be a word")
        if not (isinstance(begin, int) and isinstance(end, int)):
            raise ValueError(f"{prefix}span {list(span)}: offsets must be integers")
        if not 0 <= begin <= end <= len(transcript):
            raise ValueError(
                f"{prefix}span {list(span)} lies outside the transcript "
                f"({len(transcript)} characters)"
            )
        if begin < last_end:
            raise ValueError(f"{prefix}span {list(span)} overlaps the span before it")
        last_end = end


def reference_pairs(transcript: str, spans: Sequence[Sequence]) -> list[tuple[str, str]]:
    """The ``(label, value)`` pairs of a reference, values whitespace-normalised.

    Example
    -------
    >>> reference_pairs("at  seven am", [("time", 3, 12)])
    [('time', 'seven am')]
    """
    return [(label, normalize_space(transcript[begin:end])) for label, begin, end in spans]


class LabelMarkup:
    """Type -> opener map and output alphabet of a CTC SLU model.

    Parameters
    ----------
    openers : dict
        Label -> its opening character.
    characters : sequence of str
        Transcript characters of the alphabet (single characters).
    closer : str
        The shared closing character.

    The alphabet (ids) is ``[BLANK, UNKNOWN] + characters + openers (sorted
    by label) + [closer]``.
    """

    def __init__(self, openers: dict[str, str], characters: Sequence[str], closer: str = CLOSER):
        self.openers = dict(sorted(openers.items()))
        self.closer = closer
        markers = list(self.openers.values()) + [closer]
        if len(set(markers)) != len(markers):
            raise ValueError("openers and the closer must be distinct characters")
        chars = sorted(set(characters) - set(markers))
        if any(len(c) != 1 for c in chars + markers):
            raise ValueError("every symbol of the alphabet must be one character")
        self.characters = chars
        self.labels = {opener: label for label, opener in self.openers.items()}
        self.symbols = [BLANK, UNKNOWN] + chars + list(self.openers.values()) + [closer]
        self.index = {s: i for i, s in enumerate(self.symbols)}

    # -- building, saving --------------------------------------------------------------

    @classmethod
    def build(cls, examples: Iterable[tuple[str, Sequence[Sequence]]]) -> LabelMarkup:
        """The markup of training examples ``(transcript, spans)``.

        Labels get openers in sorted order, so the same data always gives
        the same map.
        """
        chars, labels = set(), set()
        for transcript, spans in examples:
            chars.update(transcript)
            labels.update(span[0] for span in spans)
        free = (c for c in OPENER_CANDIDATES if c not in chars)
        openers = {}
        for label in sorted(labels):
            try:
                openers[label] = next(free)
            except StopIteration:
                raise ValueError(
                    f"too many labels ({len(labels)}) for the opener characters"
                ) from None
        closer = next(c for c in CLOSER_CANDIDATES if c not in chars and c not in openers.values())
        return cls(openers, chars, closer)

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelMarkup) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"LabelMarkup({len(self.openers)} labels, {len(self.characters)} characters, "
            f"closer={self.closer!r})"
        )

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "openers": self.openers,
            "closer": self.closer,
            "characters": self.characters,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LabelMarkup:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a label markup (format {FORMAT!r} expected)")
        return cls(data["openers"], data["characters"], data["closer"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the markup as JSON (atomically)."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        write_text_atomic(path, text + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelMarkup:
        """Read a markup written by :meth:`save`; errors name the file."""
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_dict(json.load(f))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: cannot read the label markup ({err})") from err

    # -- encoding ----------------------------------------------------------------------

    @property
    def blank_index(self) -> int:
        return 0

    @property
    def unknown_index(self) -> int:
        return 1

    def encode(self, transcript: str, spans: Sequence[Sequence]) -> str:
        """The annotated target of a transcript and its ``[label, begin, end]`` spans.

        A label without an opener (not seen in training) is written with the
        unknown symbol as its opener (``"\\ufffd"``), so the value and the
        closer stay in the target.
        """
        check_spans(transcript, spans)
        pieces, last = [], 0
        for label, begin, end in spans:
            opener = self.openers.get(label, "\ufffd")
            pieces += [transcript[last:begin], opener, transcript[begin:end], self.closer]
            last = end
        pieces.append(transcript[last:])
        return "".join(pieces)

    def to_ids(self, annotated: str) -> list[int]:
        """Ids of an annotated string; characters outside the alphabet become the unknown id."""
        unknown = self.unknown_index
        return [self.index.get(c, unknown) for c in annotated]

    def to_symbols(self, ids: Iterable[int]) -> list[str]:
        """Symbols of ids (blank and unknown included, as their names)."""
        return [self.symbols[int(i)] for i in ids]

    # -- decoding ----------------------------------------------------------------------

    def parse(self, symbols: Sequence[str]) -> tuple[str, list[Span]]:
        """Clean transcript and spans of a symbol sequence (any symbols; never fails).

        Blanks, unknown symbols and stray closers are dropped. ``Span.start``
        and ``Span.end`` index ``symbols``.
        """
        text, spans = [], []
        open_label, open_at, value = None, 0, []

        def close(at: int) -> None:
            spans.append(Span(open_label, normalize_space("".join(value)), open_at, at))

        for i, symbol in enumerate(symbols):
            if symbol in self.labels:
                if open_label is not None:
                    close(i)
                open_label, open_at, value = self.labels[symbol], i, []
            elif symbol == self.closer:
                if open_label is not None:
                    close(i)
                    open_label = None
            elif len(symbol) == 1 and symbol != "\ufffd":
                text.append(symbol)
                if open_label is not None:
                    value.append(symbol)
        if open_label is not None:
            close(len(symbols))
        return normalize_space("".join(text)), spans

    def decode(self, annotated: str) -> tuple[str, list[tuple[str, str]]]:
        """``(clean transcript, [(label, value), ...])`` of an annotated string."""
        text, spans = self.parse(list(annotated))
        return text, [(s.label, s.value) for s in spans]

    def decode_ids(self, ids: Iterable[int]) -> str:
        """The annotated string of ids (blank and unknown dropped)."""
        return "".join(s for s in self.to_symbols(ids) if len(s) == 1)
