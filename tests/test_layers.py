"""The library's layers hold: entry points -> tasks -> core, never upwards (import-linter).

The contract is ``[tool.importlinter]`` in pyproject.toml; ``make lint`` runs the
same check with ``lint-imports``.
"""

import subprocess
import sys

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
