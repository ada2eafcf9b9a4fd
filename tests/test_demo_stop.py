"""A stopped demo (Ctrl-C, SIGTERM from a time limit) says how to resume, and exits 130."""

import os
import signal

from sense.demo import run


def test_sigterm_stops_the_demo_with_the_resume_hint(monkeypatch, capsys):
    def stopped_midway(argv):
        os.kill(os.getpid(), signal.SIGTERM)  # as `timeout` or a scheduler sends it
        raise AssertionError("SIGTERM did not stop the demo")

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(run, "_main", stopped_midway)
    try:
        assert run.main([]) == run.EXIT_STOPPED
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert "The demo was stopped." in err and "Run `make demo` again to resume it" in err


def test_ctrl_c_names_the_same_command_to_resume(monkeypatch, capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(run, "_main", interrupted)
    try:
        assert run.main(["--quick", "--output", "out dir"]) == run.EXIT_STOPPED
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "Run `python -m sense.demo --quick --output 'out dir'` again" in capsys.readouterr().err
