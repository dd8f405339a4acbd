"""Helpers of the fault-injection suite: run the real CLI in a subprocess, judge its stderr."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import reparam

SRC = Path(reparam.__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--quiet"]


def cli_env(umask: int | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", **extra)
    env.pop("REPARAM_DEBUG", None)
    if "REPARAM_FAULT" not in extra:
        env.pop("REPARAM_FAULT", None)
    return env


def run_cli(*args: str, cwd: Path | None = None, umask: int | None = None,
            timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m reparam ARGS`` in a subprocess (optionally under ``umask``; ``env``: extra
    variables, e.g. ``REPARAM_FAULT`` of :func:`reparam.vae.loop.fault_plan`)."""
    return subprocess.run([sys.executable, "-m", "reparam", *args], cwd=cwd,
                          env=cli_env(**(env or {})),
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def start_cli(*args: str, cwd: Path | None = None, umask: int | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reparam", *args], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def named_error(proc) -> str:
    """The observed outcome of a run expected to fail: 'exit 2, one named line' or what it was."""
    err = proc.stderr.strip().splitlines()
    if proc.returncode == 2 and len(err) == 1 and ": error: " in err[0] and "Traceback" not in proc.stderr:
        return "exit 2, one named line"
    return f"exit {proc.returncode}, stderr {len(err)} lines"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def call_main(*args: str, umask: int | None = None) -> Result:
    """``reparam.cli.main(ARGS)`` in this process (fast: torch is already imported), with
    stdout and stderr captured and argparse's ``SystemExit`` turned into the status."""
    from reparam.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.umask(umask) if umask is not None else None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
    finally:
        if old is not None:
            os.umask(old)
    return Result(rc, out.getvalue(), err.getvalue())
