"""One policy for every command: outputs, model kinds, and usage errors before heavy imports.

- An output path holding anything the command did not write is left byte-identical
  (without ``--force``): exit 2, one line, before any work.
- A model folder of another kind: exit 2, one line naming both kinds, no traceback.
- ``sense.load`` picks the interface from ``meta.json``; a damaged or unknown one is one error.
- Every usage error is printed without importing torch, transformers or speechbrain.
"""

import json
import os
import subprocess
import sys

import pytest
import soundfile as sf
from test_cli import SR, tone
from test_cli_errors import snapshot

import sense
from sense import formats
from sense.cli import main
from sense.testing.exports import export_each_kind

INTERFACES = {
    formats.SENSE_MODEL: "SENSE",
    formats.DUAL_ENCODER: "DualEncoder",
    formats.TRANSLATOR: "Translator",
    formats.ZEROST: "ZeroSTTranslator",
    formats.SLU_MODEL: "SLU",
    formats.SUMMARIZER: "Summarizer",
}
#: command -> the formats it takes (search takes -m after the index and queries).
COMMAND_FORMATS = {
    "embed": formats.EMBEDDING_FORMATS,
    "index": formats.EMBEDDING_FORMATS,
    "search": formats.EMBEDDING_FORMATS,
    "attention": (formats.SENSE_MODEL,),
    "translate": formats.TRANSLATION_FORMATS,
    "slu": (formats.SLU_MODEL,),
    "summarize": (formats.SUMMARIZER,),
}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory, tiny_w2v_bert, tiny_xlmr):
    return export_each_kind(str(tmp_path_factory.mktemp("kinds")), tiny_w2v_bert, tiny_xlmr)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "a.wav"
    sf.write(path, tone(220, 1.0, 0), SR)
    return str(path)


def argv_for(command: str, model: str, clip: str, output: str) -> list[str]:
    """A command line that would run ``command`` with ``model``, ``clip`` and ``output``."""
    if command == "search":
        return ["search", output, "a query", "-m", model]
    if command == "import":
        return ["import", clip, "-o", output]
    return [command, "-m", model, clip, "-o", output]


def run(capsys, argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# --- sense.load -------------------------------------------------------------------


def test_sense_load_gives_the_interface_each_meta_json_names(kinds):
    assert sorted(kinds) == sorted(formats.FORMATS)
    for name, folder in kinds.items():
        assert formats.read_format(folder) == name
        assert type(sense.load(folder, device="cpu")).__name__ == INTERFACES[name]


def test_sense_load_refuses_a_damaged_or_unknown_meta_json_in_one_error(kinds, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(kinds[formats.SENSE_MODEL], folder)
    meta = folder / "meta.json"
    meta.write_text('{"format": "sense-model", ', encoding="utf-8")
    with pytest.raises(formats.ModelFormatError, match=r"meta\.json: not readable JSON"):
        sense.load(str(folder))
    meta.write_text('{"format": "sense-model-v9"}', encoding="utf-8")
    with pytest.raises(formats.ModelFormatError, match="unknown model format 'sense-model-v9'"):
        sense.load(str(folder))
    meta.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(formats.ModelFormatError, match="names no format"):
        sense.load(str(folder))
    meta.unlink()
    with pytest.raises(formats.ModelFormatError, match="no meta.json"):
        sense.load(str(folder))
    with pytest.raises(formats.WrongModelError, match="an SLU model; the caller needs a summ"):
        sense.load(kinds[formats.SLU_MODEL], accepted=[formats.SUMMARIZER])


# --- the wrong kind of model --------------------------------------------------------


def test_every_command_names_the_kind_it_needs_and_the_kind_it_got(kinds, clip, tmp_path, capsys):
    cases = 0
    for command, accepted in COMMAND_FORMATS.items():
        for name, folder in kinds.items():
            if name in accepted:
                continue
            output = str(tmp_path / f"{command}-{name}-out")
            status, out, err = run(capsys, argv_for(command, folder, clip, output))
            lines = err.strip().splitlines()
            assert status == 2, (command, name, err)
            assert len(lines) == 1, (command, name, err)
            got, needed = formats.FORMATS[name].kind, formats.FORMATS[accepted[0]].kind
            assert lines[0].startswith(f"sense {command}: error: {folder}: {got}; "), lines
            assert f"sense {command} needs {needed}" in lines[0]
            assert not os.path.exists(output) and out == ""
            cases += 1
    assert cases == 7 * 6 - 11  # 7 commands x 6 kinds, less the 11 pairs that fit


# --- outputs ---------------------------------------------------------------------------

#: command -> (outputs it writes from -o, whether the output is a folder).
WRITERS = {
    "embed": (lambda o: [o + ".npy", o + ".jsonl"], False),
    "index": (lambda o: [o], True),
    "attention": (lambda o: [o], True),
    "import": (lambda o: [o], True),
    "slu": (lambda o: [o], False),
    "translate": (lambda o: [o], False),
    "summarize": (lambda o: [o], False),
}
MODEL_OF = {
    "embed": formats.SENSE_MODEL,
    "index": formats.SENSE_MODEL,
    "attention": formats.SENSE_MODEL,
    "import": formats.SENSE_MODEL,
    "slu": formats.SLU_MODEL,
    "translate": formats.TRANSLATOR,
    "summarize": formats.SUMMARIZER,
}


def _user_files(path: str, folder: bool) -> None:
    """What a user may have at an output path: a folder of their files, or a file."""
    if folder:
        os.makedirs(path)
        for name in ("report.md", "summary.json", "index.json", "meta.json"):
            with open(os.path.join(path, name), "w", encoding="utf-8") as f:
                f.write('{"mine": "keep me $HOME"}\n')
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write('{"id": 1}\nmy own notes, not sense output\n')


def test_no_command_replaces_a_users_file_or_folder(kinds, clip, tmp_path, capsys):
    for command, (paths, folder) in WRITERS.items():
        for as_folder in sorted({folder, False}):  # a folder output refuses a file too
            output = str(tmp_path / f"{command}-{as_folder}" / "out")
            os.makedirs(os.path.dirname(output))
            targets = paths(output)
            for target in targets:
                _user_files(target, as_folder)
            before = {t: snapshot(t) for t in targets}
            # a model that does not exist: the output is refused before the model is looked at
            for model in (kinds[MODEL_OF[command]], str(tmp_path / "no-such-model")):
                status, out, err = run(capsys, argv_for(command, model, clip, output))
                lines = err.strip().splitlines()
                assert status == 2 and len(lines) == 1, (command, as_folder, err)
                assert lines[0].startswith(f"sense {command}: error: {targets[0]}"), lines
                assert lines[0].endswith("choose another path, or pass --force") or (
                    os.path.isdir(targets[0]) and not folder
                ), lines
                assert {t: snapshot(t) for t in targets} == before, command


def test_embed_output_alone_beside_a_users_file_is_refused_and_force_replaces(
    kinds, clip, tmp_path, capsys
):
    model = kinds[formats.SENSE_MODEL]
    output = str(tmp_path / "vectors")
    with open(output + ".jsonl", "w", encoding="utf-8") as f:
        f.write("my list of ids\n")
    status, _, err = run(capsys, ["embed", "-m", model, clip, "-o", output])
    assert status == 2 and f"{output}.jsonl: a file that sense embed did not write" in err
    assert open(output + ".jsonl", encoding="utf-8").read() == "my list of ids\n"
    assert not os.path.exists(output + ".npy")
    status, _, err = run(capsys, ["embed", "-m", model, clip, "-o", output, "--force", "-q"])
    assert status == 0, err
    first = json.loads(open(output + ".jsonl", encoding="utf-8").readline())
    assert first == {"id": clip, "kind": "audio", "path": clip}
    # its own earlier output is replaced without --force
    status, _, err = run(capsys, ["embed", "-m", model, clip, "-o", output, "-q"])
    assert status == 0, err


def test_commands_replace_their_own_earlier_output(kinds, clip, tmp_path, capsys):
    output = str(tmp_path / "spans.jsonl")
    slu = kinds[formats.SLU_MODEL]
    for _ in range(2):
        status, _, err = run(capsys, ["slu", "-m", slu, clip, "-o", output, "-q"])
        assert status == 0, err
    assert json.loads(open(output, encoding="utf-8").readline())["path"] == clip
    output = str(tmp_path / "translations.jsonl")
    translator = kinds[formats.TRANSLATOR]
    for _ in range(2):
        status, _, err = run(capsys, ["translate", "-m", translator, clip, "-o", output, "-q"])
        assert status == 0, err
    assert list(json.loads(open(output, encoding="utf-8").readline())) == ["path", "translation"]


def test_quiet_attention_prints_only_the_skipped_inputs_and_reruns_into_its_folder(
    kinds, clip, tmp_path, capsys
):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    output = tmp_path / "attention"
    argv = ["attention", "-m", kinds[formats.SENSE_MODEL], clip, str(empty), "-o", output, "-q"]
    for _ in range(2):  # the second run replaces its own output
        status, out, err = run(capsys, argv)
        assert status == 0 and out == ""
        assert err.splitlines() == ["skipped 1 input(s):", f"  {empty}: empty file (0 bytes)"]
    summary = json.loads((output / "summary.json").read_text(encoding="utf-8"))
    assert summary["format"] == formats.ATTENTION_OUTPUT and summary["utterances"] == 1
    status, _, err = run(capsys, ["embed", "-m", kinds[formats.SENSE_MODEL], str(empty),
                                  "-o", tmp_path / "e"])  # fmt: skip
    assert status == 1 and f"  {empty}: empty file (0 bytes)" in err.splitlines()
    assert "done in" not in err  # only after a command that did its work
    file_output = tmp_path / "report.txt"
    file_output.write_text("mine", encoding="utf-8")
    status, _, err = run(capsys, [*argv[:-3], "-o", file_output, "-q", "--force"])
    assert status == 0 and (file_output / "summary.json").is_file()


# --- usage errors before heavy imports -------------------------------------------------

HEAVY = ("torch", "transformers", "speechbrain")


def _usage_cases(kinds, clip, tmp):
    """``(argv, expected text of the error line)`` for every command's usage errors."""
    sense_model, slu = kinds[formats.SENSE_MODEL], kinds[formats.SLU_MODEL]
    user_file = os.path.join(tmp, "mine.npy")
    with open(user_file, "w", encoding="utf-8") as f:
        f.write("keep\n")
    cases = [
        ([], "embed audio files, folders or text files into a .npy file"),  # the help
        (["frobnicate"], "invalid choice"),
        (["search", os.path.join(tmp, "idx")], "give a text query"),
        (["search", "idx", "q", "-m", slu], "an SLU model; sense search needs"),
        (["search", "idx", "q", "-k", "0"], "must be a positive integer"),
        (
            ["import", "-o", user_file, clip],
            "mine.npy: is a file, not a sense import folder; writing there would",
        ),
        (["import", clip], "the following arguments are required: -o"),
    ]
    for command in ("embed", "index", "attention", "slu", "translate", "summarize"):
        accepted = COMMAND_FORMATS[command]
        wrong = slu if formats.SLU_MODEL not in accepted else sense_model
        right = kinds[accepted[0]]
        fresh = [command, "-m", right, clip, "-o", os.path.join(tmp, f"{command}-fresh")]
        cases += [
            ([command, clip], "the following arguments are required: -m"),
            ([command, "-m", wrong, clip, "-o", os.path.join(tmp, "o")], "sense " + command),
            ([command, "-m", right, clip, "-o", user_file], "mine.npy: "),
            (
                fresh + ["--batch-size", "x"],
                "argument --batch-size: must be a positive integer, got 'x'",
            ),
            (fresh + ["--device", "gpu"], "is not a device"),
            (fresh + ["--bogus"], "unrecognized arguments: --bogus"),
        ]
    for command in ("embed", "index"):
        base = [command, "-m", sense_model, clip, "-o", os.path.join(tmp, "w")]
        cases += [
            (base + ["--window", "2", "--overlap", "2"], "must be smaller than --window"),
            (base + ["--window", "30", "--max-duration", "10"], "longer than --max-duration"),
            (base + ["--split", "pauses"], "invalid choice: 'pauses'"),
        ]
    return cases


_USAGE_SCRIPT = """
import contextlib, io, json, sys
from sense.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exit:
            status = exit.code
    heavy = [m for m in {heavy!r} if m in sys.modules]
    results.append([status, err.getvalue(), heavy])
print(json.dumps(results))
"""


def run_in_a_fresh_process(argvs, heavy=HEAVY) -> list:
    """``[status, stderr, the modules of heavy it had imported]`` of ``sense.cli.main`` on
    each of ``argvs``, in order, in one new Python process."""
    result = subprocess.run(
        [sys.executable, "-c", _USAGE_SCRIPT.format(heavy=tuple(heavy)), json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_usage_error_is_printed_before_torch_is_imported(kinds, clip, tmp_path):
    cases = _usage_cases(kinds, clip, str(tmp_path))
    results = run_in_a_fresh_process([argv for argv, _ in cases])
    for (argv, expected), (status, err, heavy) in zip(cases, results):
        assert status == 2, (argv, err)
        assert expected in err, (argv, err)
        assert "Traceback" not in err, (argv, err)
        assert heavy == [], (argv, heavy)  # the first case that imported them


def test_interfaces_from_the_package_top_without_torch_until_used():
    code = (
        "import sys, sense\n"
        "assert 'torch' not in sys.modules, 'import sense loaded torch'\n"
        "from sense.formats import FORMATS\n"
        "names = [getattr(sense, f.interface.split(':')[1]).__name__ for f in FORMATS.values()]\n"
        "print(sorted(names), all(issubclass(getattr(sense, n), sense.SENSE.__mro__[1]) "
        "for n in names))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    expected = ["DualEncoder", "SENSE", "SLU", "Summarizer", "Translator", "ZeroSTTranslator"]
    assert result.stdout.strip() == f"{expected} True"  # one base: SenseModel
