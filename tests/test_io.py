"""sense.io: atomic files and folders, hub id or local path."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from sense.io import (
    TMP_SUFFIX,
    atomic_write,
    is_hub_id,
    is_local_source,
    looks_like_path,
    save_npy_atomic,
    staged_folder,
    write_json_atomic,
    write_text_atomic,
)


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"R@1": 0.25})

    def half_then_crash(tmp):
        with open(tmp, "w") as f:
            f.write('{"R@1": 0.')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_crash)
    assert json.loads(path.read_text()) == {"R@1": 0.25}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_writes_create_the_folder_and_replace_the_file(tmp_path):
    path = tmp_path / "a" / "b" / "x.npy"
    save_npy_atomic(path, np.arange(4))
    save_npy_atomic(path, np.arange(2))  # replaces, no ".npy" added
    assert np.load(path).tolist() == [0, 1]
    text = tmp_path / "t.tsv"
    write_text_atomic(text, "a\tb\r\n")
    assert text.read_bytes() == b"a\tb\r\n"  # newlines written as given
    assert sorted(os.listdir(tmp_path)) == ["a", "t.tsv"]


def test_temporary_names_match_the_cleanup_pattern(tmp_path):
    seen = []
    atomic_write(tmp_path / "index.json", lambda tmp: seen.append(tmp) or open(tmp, "w").close())
    assert re.fullmatch(r"index\.json" + TMP_SUFFIX, os.path.basename(seen[0]))
    assert re.fullmatch(r"index\.json" + TMP_SUFFIX, "index.json.123.tmp")  # older versions


def test_staged_folder_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "index"
    with staged_folder(target) as tmp:
        write_text_atomic(os.path.join(tmp, "v"), "1")
    with pytest.raises(RuntimeError, match="crash"):
        with staged_folder(target) as tmp:
            write_text_atomic(os.path.join(tmp, "v"), "2")
            raise RuntimeError("crash")
    assert (target / "v").read_text() == "1"
    assert os.listdir(tmp_path) == ["index"]  # no temporary or old folder left
    with staged_folder(target) as tmp:
        write_text_atomic(os.path.join(tmp, "w"), "2")
    assert os.listdir(target) == ["w"]
    assert os.listdir(tmp_path) == ["index"]


@pytest.mark.parametrize(
    ("source", "path", "hub"),
    [
        ("BAAI/bge-m3", False, True),
        ("bert-base-uncased", False, True),
        ("results/sense/save", True, False),
        ("./sense", True, False),
        ("../sense", True, False),
        ("~/models/sense", True, False),
        ("/abs/sense", True, False),
        ("org/name with space", False, False),  # neither: left to the hub to refuse
    ],
)
def test_hub_id_or_path(source, path, hub):
    assert looks_like_path(source) is path
    assert is_hub_id(source) is hub
    assert is_local_source(source) is path


def test_an_existing_folder_is_local_even_when_named_like_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("org/model")
    assert is_hub_id("org/model") and not looks_like_path("org/model")
    assert is_local_source("org/model")
    assert not is_local_source("org/other")
