"""The library's layers hold: entry points -> tasks -> core, never upwards (import-linter).

The contract is ``[tool.importlinter]`` in pyproject.toml; ``make lint`` runs the
same check with ``lint-imports``.
"""

import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter's own dependency
    import tomli as tomllib

LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def test_import_contract_is_kept():
    result = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_the_demo_and_the_test_helpers_are_layered_one_way():
    """``sense.testing`` sits above the demo (it reuses the demo's tiny models and voice);
    the demo and the command line import neither it nor each other."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    contract = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = contract["contracts"][0]["layers"]
    assert layers[0] == "sense.testing"
    assert layers[1] == "sense.cli | sense.demo"
