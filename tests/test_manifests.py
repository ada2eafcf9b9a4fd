"""The one manifest reader: cells come back exactly as written, bad manifests are named."""

import re
from pathlib import Path

import pytest
from speechbrain.dataio.dataset import DynamicItemDataset

from sense.prepare import (
    ManifestError,
    manifest_data,
    manifest_dataset,
    read_manifest,
    write_manifest,
)

#: Text a transcript, a translation or a label may hold.
HOSTILE = [
    "It costs $5",
    "$HOME and ${x} and $word.end",
    "{braces} {0} %s %(name)s 100%",
    "\"double\" 'single' \u201ccurly\u201d, commas, and; more",
    "a\ttab, a CR\r and a newline\n inside",
    "  leading and trailing spaces  ",
    "emoji outside the BMP: \U0001f389\U0001f600",
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 right-to-left",
    "back\\slash \\n not a newline",
    "x" * 5000 + " very long",
]


def _rows(texts=HOSTILE):
    return [
        {"ID": f"u{i}", "duration": f"{1 + i / 10:.3f}", "wav": f"/d/$dir/u{i}.flac",
         "language": "fr", "transcript": text}
        for i, text in enumerate(texts)
    ]  # fmt: skip


def test_hostile_text_comes_back_exactly(tmp_path):
    path = str(tmp_path / "train.csv")
    write_manifest(path, _rows())
    rows = read_manifest(path)
    assert [r["transcript"] for r in rows] == HOSTILE
    assert rows[0] == {
        "ID": "u0", "duration": "1.000", "wav": "/d/$dir/u0.flac", "language": "fr",
        "transcript": "It costs $5",
    }  # fmt: skip
    data = manifest_data(path)
    assert list(data) == [f"u{i}" for i in range(len(HOSTILE))]
    assert data["u1"] == {
        "duration": 1.1, "wav": "/d/$dir/u1.flac", "language": "fr",
        "transcript": HOSTILE[1],
    }  # fmt: skip
    dataset = manifest_dataset(path, output_keys=["id", "transcript", "wav", "duration"])
    got = [dataset[i] for i in range(len(dataset))]
    assert [g["transcript"].encode() for g in got] == [t.encode() for t in HOSTILE]
    assert got[2]["wav"] == "/d/$dir/u2.flac" and got[2]["duration"] == 1.2


def test_speechbrain_from_csv_is_what_it_replaces(tmp_path):
    path = str(tmp_path / "train.csv")
    write_manifest(path, _rows(HOSTILE[:1]))
    with pytest.raises(KeyError, match="requires replacements"):
        DynamicItemDataset.from_csv(path)


def test_bom_crlf_and_spaces_around_header_names(tmp_path):
    path = tmp_path / "train.csv"
    text = (
        "\ufeffID, duration ,wav,language,transcript\r\n"
        'a,1.0,a.flac,fr,"co\u00fbte $5, ""vraiment"""\r\n'
        "\r\n"
        "b,2.5,b.flac,ar,\u0645\u0631\u062d\u0628\u0627 \U0001f389\r\n"
    )
    path.write_bytes(text.encode("utf-8"))
    assert manifest_data(str(path)) == {
        "a": {"duration": 1.0, "wav": "a.flac", "language": "fr",
              "transcript": 'co\u00fbte $5, "vraiment"'},
        "b": {"duration": 2.5, "wav": "b.flac", "language": "ar",
              "transcript": "\u0645\u0631\u062d\u0628\u0627 \U0001f389"},
    }  # fmt: skip


@pytest.mark.parametrize(
    "text, problem",
    [
        ("wav,transcript\na.flac,x\n", r"train.csv: no 'ID' column in the header \['wav'"),
        ("ID,ID,wav\na,a,x\n", r"train.csv: columns named twice in the header: \['ID'\]"),
        ("ID,wav\na,x\nb,y\na,z\n", r"train.csv: line 4: ID 'a' repeated \(first on line 2\)"),
        ("ID,wav\n ,x\n", r"train.csv: line 2: empty ID"),
        ("ID,wav,transcript\na,x,It costs $5, really\n", r"train.csv: line 2: 4 fields, the hea"),
        ("ID,wav,transcript\na,x\n", r"train.csv: line 2: 2 fields, the header has 3"),
        ('ID,wav\na,"x\nb,y\n', r"train.csv: line 2: not CSV \(unexpected end of data\)"),
    ],
)
def test_bad_manifests_are_named_with_the_problem(tmp_path, text, problem):
    path = tmp_path / "train.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError, match=problem):
        read_manifest(str(path))


def test_bad_duration_empty_manifest_missing_file_and_bad_encoding(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("ID,duration\na,1.5s\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"train.csv: row 'a': duration '1.5s' is not a number"):
        manifest_data(str(path))
    path.write_text("ID,duration\n", encoding="utf-8")
    assert read_manifest(str(path)) == []
    with pytest.raises(ManifestError, match="train.csv: the manifest has no rows"):
        manifest_dataset(str(path))
    with pytest.raises(FileNotFoundError, match="nope.csv: no such manifest"):
        read_manifest(str(tmp_path / "nope.csv"))
    path.write_bytes("ID,transcript\na,co\u00fbte\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="train.csv: not UTF-8 text"):
        read_manifest(str(path))


def test_no_dataset_is_built_with_from_csv():
    """Manifests are read by sense.prepare only: ``from_csv`` would bring $-substitution back."""
    root = Path(__file__).resolve().parents[1]
    callers = [
        str(path.relative_to(root))
        for folder in ("sense", "recipes", "benchmarks")
        for path in sorted((root / folder).rglob("*.py"))
        if re.search(r"\.from_csv\(|load_data_csv\(", path.read_text(encoding="utf-8"))
    ]
    assert callers == []
