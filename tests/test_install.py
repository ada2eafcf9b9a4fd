"""The wheel works outside the checkout: built, installed into a fresh virtual environment,
run from another folder (the ``sense`` command, ``sense.load``, embedding a file).

The fresh environment sees this environment's dependencies through a ``.pth``
line (nothing is downloaded), but not the checkout: ``sense`` is imported from
the installed wheel.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
import soundfile as sf
from test_cli import SR, tone

from sense.testing.exports import export_sense

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UV = shutil.which("uv", path=os.path.dirname(sys.executable))

pytestmark = pytest.mark.skipif(UV is None, reason="uv (installed by `make install`) builds it")


def _run(argv, cwd, **kw):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("install")
    built = _run([UV, "build", "--wheel", "-o", str(root / "dist"), REPO], cwd=root, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("sense-*.whl")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root, timeout=120)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], root)
    deps = sysconfig.get_path("purelib")  # this environment's packages, not its .pth files
    with open(os.path.join(site.stdout.strip(), "dependencies.pth"), "w") as f:
        f.write(deps + "\n")
    done = _run([UV, "pip", "install", "--python", str(python), "--no-deps", str(wheel)], root)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv, root


def test_the_installed_wheel_runs_outside_the_checkout(installed, tiny_w2v_bert, tiny_xlmr):
    venv, root = installed
    work = root / "work"
    work.mkdir()
    where = _run([venv / "bin" / "python", "-c", "import sense; print(sense.__file__, sense.load)"],
                 work)  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(venv)) and "<function load" in where.stdout
    demo = _run([venv / "bin" / "python", "-m", "sense.demo"], work)
    assert demo.returncode == 2 and "clone the repository and run `make demo`" in demo.stderr
    assert "Traceback" not in demo.stderr
    helped = _run([venv / "bin" / "sense", "--help"], work)
    assert helped.returncode == 0 and "translate" in helped.stdout, helped.stderr
    model = export_sense(str(work / "model"), tiny_w2v_bert, tiny_xlmr)
    sf.write(work / "clip.wav", tone(220, 1.0, 0), SR)
    embedded = _run([venv / "bin" / "sense", "embed", "-m", model, "clip.wav", "-o", "out", "-q"],
                    work, timeout=600)  # fmt: skip
    assert embedded.returncode == 0, embedded.stderr[-3000:]
    ids = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    assert ids == [{"id": "clip.wav", "kind": "audio", "path": "clip.wav"}]
    import numpy as np

    import sense

    expected = sense.load(model, device="cpu").encode_file(str(work / "clip.wav")).numpy()
    np.testing.assert_allclose(np.load(work / "out.npy")[0], expected, atol=1e-5)


def test_the_wheel_ships_the_page_of_sense_serve(installed):
    venv, root = installed
    code = (
        "import json; from importlib import resources\n"
        "static = resources.files('sense.serve') / 'static'\n"
        "print(json.dumps([str(static), sorted(p.name for p in static.iterdir())]))"
    )
    shipped = _run([venv / "bin" / "python", "-c", code], root)
    assert shipped.returncode == 0, shipped.stderr
    folder, names = json.loads(shipped.stdout)
    assert folder.startswith(str(venv)) and names == ["app.js", "index.html", "style.css"]
