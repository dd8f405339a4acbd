"""Fault-injection harness: the real CLI in subprocesses, and a recorder of every case tried.

Each test reports its cases with ``reliability.case(fault, outcome)``, where ``outcome`` is
what was observed (exit status, whether stderr was one named line, whether files survived).
With ``REPARAM_RELIABILITY_DOC=docs/reliability.md`` the session ends by writing the table
of fault classes, case counts, observed outcomes and the test verdicts into that file.
"""

from __future__ import annotations

import collections
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reliability_harness import TINY, start_cli

DOC_ENV = "REPARAM_RELIABILITY_DOC"


@dataclass
class Row:
    cases: int = 0
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    tests: set = field(default_factory=set)


ROWS: dict[str, Row] = {}
FAILED: set[str] = set()


class Recorder:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def case(self, fault: str, outcome: str, n: int = 1) -> None:
        row = ROWS.setdefault(fault, Row())
        row.cases += n
        row.outcomes[outcome] += n
        row.tests.add(self.nodeid)


@pytest.fixture
def reliability(request) -> Recorder:
    return Recorder(request.node.nodeid)


def pytest_runtest_logreport(report):
    if report.failed:
        FAILED.add(report.nodeid)
        if not any(report.nodeid in row.tests for row in ROWS.values()):  # failed before recording
            Recorder(report.nodeid).case(report.nodeid.split("::")[-1], "test failed before recording")


def pytest_sessionfinish(session):
    target = os.environ.get(DOC_ENV)
    if target and ROWS:
        write_doc(Path(target))


def write_doc(path: Path) -> None:
    text = path.read_text() if path.is_file() else "# Reliability\n\n<!-- table -->\n<!-- /table -->\n"
    head, _, rest = text.partition("<!-- table -->")
    _, _, tail = rest.partition("<!-- /table -->")
    lines = ["| fault or bad input | cases | observed outcome | tests |", "|---|---:|---|---|"]
    for fault in sorted(ROWS):
        row = ROWS[fault]
        outcome = "; ".join(f"{n}x {o}" if len(row.outcomes) > 1 else o
                            for o, n in sorted(row.outcomes.items()))
        verdict = "FAILED" if row.tests & FAILED else "pass"
        lines.append(f"| {fault} | {row.cases} | {outcome} | {verdict} |")
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    table = "\n".join(lines) + f"\n\n{sum(r.cases for r in ROWS.values())} cases, written {stamp}.\n"
    path.write_text(f"{head}<!-- table -->\n{table}<!-- /table -->{tail}")


@pytest.fixture(scope="session")
def default_runs(tmp_path_factory) -> list[Path]:
    """Two tiny runs started together with the default run directory, under umask 022."""
    cwd = tmp_path_factory.mktemp("defaults")
    procs = [start_cli("train", *TINY, cwd=cwd, umask=0o022) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.communicate()
    return sorted((cwd / "runs").iterdir())


@pytest.fixture(scope="session")
def trained_run(default_runs) -> Path:
    """A finished tiny run; tests that alter it work on a copy (:func:`run_copy`)."""
    return default_runs[0]


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(trained_run, dest)
    return dest
