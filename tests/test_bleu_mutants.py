"""sense.translation.metrics: the decisions and files that mutation testing found unpinned."""

import json
import math

import pytest

from sense.translation.metrics import BleuTable, format_hours


def test_format_hours_rounds_from_one_hour_up():
    """1.5 h is written "2" (whole hours from 1 h), 0.5 h "0.5" (two digits below)."""
    assert format_hours(1.5) == "2"
    assert format_hours(0.5) == "0.5"


@pytest.mark.parametrize("bleu", [0.0, 100.0, 0.5])
def test_bleu_at_the_bounds_is_kept(bleu):
    table = BleuTable()
    table.add("m", "fr", bleu)
    assert table.value("m", "fr") == bleu


@pytest.mark.parametrize("bleu", [-0.5, 100.5, math.nan, math.inf])
def test_bleu_outside_0_100_is_refused(bleu):
    with pytest.raises(ValueError, match="BLEU must lie in"):
        BleuTable().add("m", "fr", bleu)


@pytest.mark.parametrize("model", ["", "  ", 3])
def test_a_model_needs_a_name(model):
    with pytest.raises(ValueError, match="model must be a non-empty string"):
        BleuTable().add(model, "fr", 10.0)


def test_an_unknown_cell_is_none():
    table = BleuTable()
    table.add("m", "fr", 10.0)
    assert table.value("other", "fr") is None
    assert table.value("m", "de") is None
    assert BleuTable().title == ""


def test_saved_files_and_loaded_table(tmp_path):
    """The JSON names its format and version; load gives back title, hours and cells;
    the Markdown and CSV are the table's own."""
    table = BleuTable("Table VI")
    table.add("SENSE", "fr", 21.67, hours=180.0)
    table.add("SENSE", "de", 21.95)
    table.add("SAMU", "fr", 15.0)
    written = table.save(tmp_path / "bleu")
    assert sorted(written) == [".csv", ".json", ".md"]
    assert written[".json"] == tmp_path / "bleu.json"
    data = json.loads(written[".json"].read_text(encoding="utf-8"))
    assert (data["format"], data["version"], data["title"]) == ("sense.bleu_table", 1, "Table VI")
    assert data["hours"] == {"fr": 180.0, "de": None}
    assert data["bleu"] == {"SENSE": {"fr": 21.67, "de": 21.95}, "SAMU": {"fr": 15.0}}
    assert written[".md"].read_text(encoding="utf-8") == table.to_markdown()
    assert written[".csv"].read_text(encoding="utf-8") == table.to_csv()
    loaded = BleuTable.load(tmp_path / "bleu")
    assert loaded.to_dict() == table.to_dict()
    assert BleuTable.open(tmp_path / "bleu").to_dict() == table.to_dict()
    assert BleuTable.open(tmp_path / "none", title="T").to_dict()["title"] == "T"
    with pytest.raises(FileNotFoundError, match="no BLEU table"):
        BleuTable.load(tmp_path / "none")


@pytest.mark.parametrize("data", [[], {"format": "other"}, {}])
def test_from_dict_refuses_what_is_not_a_table(data):
    with pytest.raises(ValueError, match="not a BLEU table"):
        BleuTable.from_dict(data)


def test_from_dict_without_a_title():
    table = BleuTable.from_dict({"format": "sense.bleu_table", "hours": {"fr": 2}, "bleu": {}})
    assert table.title == "" and table.to_dict()["hours"] == {"fr": 2.0}


def test_the_json_file_is_indented_utf8_text(tmp_path):
    """The JSON is written with two-space indents and non-ASCII text as it is (not ``\\u``
    escapes), byte for byte; and read back as UTF-8 whatever the locale's encoding."""
    table = BleuTable("FR → EN")
    table.add("Modèle", "fr", 21.67, hours=180.0)
    written = table.save(tmp_path / "bleu")
    expected = (
        "{\n"
        '  "format": "sense.bleu_table",\n'
        '  "version": 1,\n'
        '  "title": "FR → EN",\n'
        '  "hours": {\n'
        '    "fr": 180.0\n'
        "  },\n"
        '  "bleu": {\n'
        '    "Modèle": {\n'
        '      "fr": 21.67\n'
        "    }\n"
        "  }\n"
        "}\n"
    )
    assert written[".json"].read_bytes() == expected.encode("utf-8")


def test_the_table_is_read_as_utf8_under_an_ascii_locale(tmp_path, ascii_locale):
    """A machine whose locale encoding is ASCII: ``read_text()`` without an encoding would
    fail on "è"."""
    table = BleuTable("FR → EN")
    table.add("Modèle", "fr", 21.67)
    table.save(tmp_path / "bleu")
    with pytest.raises(UnicodeDecodeError):  # what the locale's encoding would do
        (tmp_path / "bleu.json").read_text()
    assert BleuTable.load(tmp_path / "bleu").to_dict() == table.to_dict()


def test_open_without_a_title_gives_an_untitled_table(tmp_path):
    assert BleuTable.open(tmp_path / "none").title == ""
    assert BleuTable.open(tmp_path / "none").to_dict()["title"] == ""
