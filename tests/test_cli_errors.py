"""``reparam``'s error handling: one named line and status 2 for expected failures,
``--debug`` for the traceback, a traceback for anything unexpected."""

import pytest

from reparam import cli
from reparam.errors import RunLockedError


def _raising(exc):
    def command(args):
        raise exc
    return command


@pytest.mark.parametrize("exc, line", [
    (RunLockedError("run directory r is in use by pid 7", hint="wait"),
     "reparam plot: error: run directory r is in use by pid 7; wait"),
    (PermissionError(13, "Permission denied", "/x/y"),
     "reparam plot: error: Permission denied: /x/y"),
    (ValueError("first\n  second"), "reparam plot: error: first; second"),
])
def test_expected_failures_are_one_line(monkeypatch, capsys, exc, line):
    monkeypatch.setitem(cli.COMMANDS, "plot", _raising(exc))
    assert cli.main(["plot", "RUN"]) == 2
    assert capsys.readouterr().err == line + "\n"


def test_debug_shows_the_traceback(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "plot", _raising(ValueError("bad")))
    assert cli.main(["plot", "RUN", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("reparam plot: error: bad\n")
    assert cli.main(["--debug", "plot", "RUN"]) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("REPARAM_DEBUG", "1")
    assert cli.main(["plot", "RUN"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_unexpected_exceptions_keep_their_traceback(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "plot", _raising(TypeError("a bug")))
    with pytest.raises(TypeError, match="a bug"):
        cli.main(["plot", "RUN"])


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", "RUN", "--batch-size", "-1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["reparam evaluate: error: argument --batch-size: must be an integer >= 1, "
                   "got -1 (see reparam evaluate --help)"]


def test_resume_and_overwrite_contradict(capsys):
    assert cli.main(["train", "--resume", "r", "--overwrite"]) == 2
    assert "--resume and --overwrite contradict" in capsys.readouterr().err
