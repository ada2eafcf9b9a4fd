"""pytest plugin for ``make mutation`` (mutmut): loaded with ``-p tools.mutmut_pytest``.

* mutmut copies each mutated function, docstring included, next to the original
  (``x_name__mutmut_3``...). With ``--doctest-modules`` every copy's example would
  be collected as one more doctest calling the same public function: those
  copies are deselected, so each docstring example runs once per mutant.
* mutmut forks each mutant's test run from the process that ran the tests
  first; an OpenMP thread pool does not survive a fork (the child hangs on its
  first parallel op), so torch keeps to one thread (tests/conftest.py sets two).
"""

import sys

_GENERATED = ("__mutmut_", "_mutmut_orig", "\u01c1")  # ǁ: mutmut's class-method separator


def pytest_sessionstart(session):
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    dropped = [item for item in items if any(mark in item.nodeid for mark in _GENERATED)]
    if dropped:
        keep = [item for item in items if item not in dropped]
        items[:] = keep
        config.hook.pytest_deselected(items=dropped)
