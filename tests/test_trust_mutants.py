"""sense.trust: the allow-list's decisions that mutation testing (make mutation) found unpinned.

Fast: the YAML is only composed, no model is built. Each refusal is pinned with
its reason, each acceptance by its not raising.
"""

import itertools
import json
import os
import subprocess
import sys

import pytest
import ruamel.yaml

from sense.trust import UntrustedCodeError, _walk, check_hparams, check_hparams_text

EVIL_TUPLE = "(!!python/object/apply:os.makedirs [/tmp/sense-pwned])"


def refusal(text: str) -> str:
    """The reason ``check_hparams_text`` gives for refusing ``text`` (between line and remedy)."""
    with pytest.raises(UntrustedCodeError) as caught:
        check_hparams_text(text)
    message = str(caught.value)
    assert message.startswith("<hparams>: line ") and message.endswith(
        "; load it with trust_remote_code=True (sense ... --trust-remote-code) only if you trust "
        "its author"
    )
    return message.split(": ", 2)[2].rsplit("; load it", 1)[0]


@pytest.mark.parametrize(
    "line, reason",
    [
        ("x: !include:other.yaml", "'!include:other.yaml' reads another file"),
        ("x: !unknown 3", "the tag '!unknown' is not a HyperPyYAML tag of a sense model folder"),
        (
            "x: !!python/name:os.system",
            "the YAML tag 'tag:yaml.org,2002:python/name:os.system' can run code",
        ),
        # an explicit !tuple needs no parentheses: HyperPyYAML drops the first and last
        # characters and loads the rest with PyYAML's unsafe Loader
        (
            "x: !tuple 'a!!python/object/apply:os.makedirs [/tmp/p]b'",
            "the tuple 'a!!python/object/apply:os.makedirs [/tmp/p]b' holds a YAML tag",
        ),
        # torch.nn names that are not nn.Module classes, or not there at all
        (
            "x: !new:torch.nn.Parameter [[1.0]]",
            "'!new:torch.nn.Parameter' is not one of the constructors a sense model folder may call",
        ),
        (
            "x: !new:torch.nn.NoSuchLayer",
            "'!new:torch.nn.NoSuchLayer' is not one of the constructors a sense model folder may "
            "call",
        ),
        (
            "x: !new:torch.nn.functional",
            "'!new:torch.nn.functional' is not one of the constructors a sense model folder may "
            "call",
        ),
        # "mymodule." is as long as "torch.nn.": what follows names an nn.Module, but the
        # module imported would be mymodule
        (
            "x: !new:mymodule.Linear [2, 2]",
            "'!new:mymodule.Linear' is not one of the constructors a sense model folder may call",
        ),
        (
            "x: !name:torch.nn.Linear",
            "'!name:torch.nn.Linear' is not one of the constructors a sense model folder may call",
        ),
    ],
    ids=[
        "include",
        "unknown-tag",
        "python-tag",
        "explicit-tuple",
        "not-a-module",
        "no-such-name",
        "a-submodule",
        "other-package",
        "name-of-a-module",
    ],
)
def test_each_refusal_and_its_reason(line, reason):
    assert refusal("a: 1\n" + line + "\n") == reason


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "x: !tuple (1, 2)\n",
        "x: (1, 2)\n",
        "x: !new:torch.nn.Linear [2, 2]\n",
        "x: !name:sense.export.load_state_dict_strict\n",
        "x: !PLACEHOLDER\n",
    ],
    ids=["empty", "comment", "tuple", "implicit-tuple", "nn-module", "name", "placeholder"],
)
def test_what_is_allowed(text):
    check_hparams_text(text)


@pytest.mark.parametrize("module", ["model", "decoder"])
@pytest.mark.parametrize("cls", ["FrameProjection", "Seq2SeqDecoder"])
def test_translation_classes_by_their_module_and_its_former_name(module, cls):
    """sense.translation.model's classes; decoder: the module's name in earlier exports."""
    check_hparams_text(f"projection: !new:sense.translation.{module}.{cls}\n  input_dim: 8\n")


def test_a_refused_tag_before_a_repeated_node_is_still_found():
    """The walk goes on past a node it has already seen (an alias) or an empty value:
    the nodes are visited last first, so the alias and the null come before the tag."""
    text = "evil: !apply:os.makedirs [/tmp/p]\nshared: &x 1\nagain: *x\nempty:\n"
    assert refusal(text) == (
        "'!apply:os.makedirs' is not one of the constructors a sense model folder may call"
    )


def test_the_walk_gives_each_node_once():
    """A recursive alias: the mapping, its key, the sequence (once) and its item; and a
    node reached twice by aliases is given once. (Through ``check_hparams_text`` a walk
    that revisits nodes would never end on the first: ``islice`` keeps this test finite.)"""
    compose = ruamel.yaml.YAML(typ="rt").compose
    nodes = list(itertools.islice(_walk(compose("a: &x [1, *x]\n")), 50))
    assert len(nodes) == 4 and len({id(n) for n in nodes}) == 4
    nodes = list(itertools.islice(_walk(compose("a: &x [1]\nb: *x\nc: *x\n")), 50))
    assert len(nodes) == 6 and len({id(n) for n in nodes}) == 6


def test_an_implicit_tuple_holding_a_tag_is_refused_once_hyperpyyaml_has_loaded():
    """After any ``load_hyperpyyaml`` in the process, ruamel resolves ``(...)`` as
    ``!tuple`` (HyperPyYAML adds the resolver to the shared loader)."""
    from hyperpyyaml import load_hyperpyyaml

    load_hyperpyyaml("a: (1, 2)\n")
    assert refusal(f"x: {EVIL_TUPLE}\n") == f"the tuple {EVIL_TUPLE!r} holds a YAML tag"


FRESH_PROCESS = """
import json, sys
from sense.trust import UntrustedCodeError, check_hparams
out = {}
for path in sys.argv[1:]:
    try:
        check_hparams(path)
        out[path] = "allowed"
    except (UntrustedCodeError, ValueError) as err:
        out[path] = type(err).__name__ + ": " + str(err)
print(json.dumps(out))
"""


def test_a_fresh_process_under_an_ascii_locale(tmp_path):
    """What ``sense embed`` does first: check the file, before HyperPyYAML has loaded
    anything (``(...)`` is then a plain string to ruamel) and whatever the locale's
    encoding (here ASCII): the file is read as UTF-8 and the implicit tuple refused."""
    clean = tmp_path / "clean.yaml"
    clean.write_text("# modèle à deux têtes\nwidth: 4\n", encoding="utf-8")
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"# modèle\nx: {EVIL_TUPLE}\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("# modèle\n".encode("latin-1"))
    reason = f"the tuple {EVIL_TUPLE!r} holds a YAML tag"
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(clean), str(evil), str(latin1)],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got[str(clean)] == "allowed"
    assert got[str(evil)].startswith(f"UntrustedCodeError: {evil}: line 2: {reason}; ")
    assert got[str(latin1)].startswith(f"ValueError: {latin1}: not UTF-8 text")
    # the same in this process (whatever it loaded before)
    check_hparams(clean)
    with pytest.raises(UntrustedCodeError, match="line 2: the tuple"):
        check_hparams(evil)


def test_check_hparams_refuses_unless_trusted(tmp_path):
    path = tmp_path / "hyperparams.yaml"
    path.write_text("x: !apply:os.makedirs [/tmp/p]\n", encoding="utf-8")
    with pytest.raises(UntrustedCodeError, match=r"hyperparams.yaml: line 1: '!apply:os.makedirs'"):
        check_hparams(path)
    check_hparams(path, trust_remote_code=True)
    check_hparams_text(path.read_text(encoding="utf-8"), trust_remote_code=True)
