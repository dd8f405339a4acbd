"""Shared pieces of the torchrun tests: the child environment and a free port."""

from __future__ import annotations

import os
import socket
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
TIMEOUT_S = 300


def child_env() -> dict[str, str]:
    """This checkout's ``src`` first on ``PYTHONPATH``, one intra-op thread per process."""
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
