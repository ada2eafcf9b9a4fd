"""sense.slu.markup: decisions and values that mutation testing (make mutation) found unpinned.

Every expected value is worked out by hand in the test's docstring or comments.
"""

import pytest

from sense.slu.markup import LabelMarkup, Span, check_spans

# Labels "date" and "time" get the first two circled letters, in sorted order.
A, B = "Ⓐ", "Ⓑ"


@pytest.fixture
def markup():
    return LabelMarkup.build([("at noon today", [["time", 3, 7], ["date", 8, 13]])])


def test_the_alphabet_and_the_ids_of_a_target(markup):
    """Ids: blank 0, unknown 1, the sorted characters (" adnoty": 2..8), the openers by
    label (date Ⓐ 9, time Ⓑ 10), the closer 11; an unseen character is the unknown id."""
    assert markup.openers == {"date": A, "time": B}
    assert markup.symbols == ["<blank>", "<unk>", " ", "a", "d", "n", "o", "t", "y", A, B, "⟩"]
    assert markup.to_ids(f"at {B}noon⟩ x") == [3, 7, 2, 10, 5, 6, 6, 5, 11, 2, 1]
    assert markup.decode_ids([0, 3, 7, 1, 9, 4, 11, 0]) == f"at{A}d⟩"


def test_span_positions_in_the_symbol_sequence(markup):
    """``a Ⓑ n o ⟩ Ⓐ d Ⓑ t`` (positions 0..8): a closed span ends at its closer (Ⓑ 1..4),
    one cut by the next opener ends there (Ⓐ 5..7), one still open at the end ends at
    the sequence's length (Ⓑ 7..9)."""
    symbols = ["a", B, "n", "o", "⟩", A, "d", B, "t"]
    text, spans = markup.parse(symbols)
    assert text == "anodt"
    assert spans == [
        Span("time", "no", 1, 4),
        Span("date", "d", 5, 7),
        Span("time", "t", 7, 9),
    ]


@pytest.mark.parametrize(
    "spans, message",
    [
        ([[5, 0, 1]], "the label must be a word"),  # not a string
        ([["", 0, 1]], "the label must be a word"),  # empty
        ([["x", 1.0, 2]], "offsets must be integers"),  # the first one a float
        ([["x", 0, 2.0]], "offsets must be integers"),  # the second one
    ],
    ids=["int-label", "empty-label", "float-begin", "float-end"],
)
def test_check_spans_refuses(spans, message):
    with pytest.raises(ValueError, match=f"^train.json: utt1: span .*{message}"):
        check_spans("abcdef", spans, where="train.json: utt1")


def test_check_spans_allows_an_empty_span_and_names_nothing_without_where():
    check_spans("abc", [["x", 1, 1], ["y", 1, 3]])  # an empty span, then one right after it
    with pytest.raises(ValueError, match=r"^span \['t', 0, 9\] lies outside"):
        check_spans("abc", [["t", 0, 9]])


def test_equality(markup):
    other = LabelMarkup.build([("at noon today", [["time", 3, 7]])])  # no "date" label
    assert markup == LabelMarkup.build([("at noon today", [["time", 3, 7], ["date", 8, 13]])])
    assert markup != other
    assert markup != "not a markup" and (markup == None) is False  # noqa: E711


def test_the_saved_file_byte_for_byte_and_back(tmp_path):
    """The transcripts use "⟩", so the closer is the next candidate, "⟧": it is saved and
    read back. The JSON is indented by one space, with the markers written as they are."""
    markup = LabelMarkup.build([("a⟩", [["x", 0, 1]])])
    assert markup.closer == "⟧"
    markup.save(tmp_path / "m.json")
    expected = (
        "{\n"
        ' "format": "sense.slu.markup",\n'
        ' "format_version": 1,\n'
        ' "openers": {\n'
        '  "x": "Ⓐ"\n'
        " },\n"
        ' "closer": "⟧",\n'
        ' "characters": [\n'
        '  "a",\n'
        '  "⟩"\n'
        " ]\n"
        "}\n"
    )
    assert (tmp_path / "m.json").read_bytes() == expected.encode("utf-8")
    loaded = LabelMarkup.load(tmp_path / "m.json")
    assert loaded.closer == "⟧" and loaded.symbols == markup.symbols
    assert LabelMarkup.from_dict(markup.to_dict()).closer == "⟧"


def test_from_dict_refuses_another_format(markup):
    data = {**markup.to_dict(), "format": "other"}
    with pytest.raises(ValueError, match="not a label markup"):
        LabelMarkup.from_dict(data)


def test_load_reads_utf8_under_an_ascii_locale(markup, tmp_path, ascii_locale):
    """Openers and closer are not ASCII: a locale's ASCII encoding would not read them."""
    markup.save(tmp_path / "m.json")
    with pytest.raises(UnicodeDecodeError):  # what the locale's encoding would do
        open(tmp_path / "m.json").read()  # noqa: SIM115
    assert LabelMarkup.load(tmp_path / "m.json") == markup
