"""Fixtures for the data tests: a clean environment, synthetic files, a local HTTP server."""

from __future__ import annotations

import gzip
import http.server
import os
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """No data dir or mirror from the caller's environment; the cache is a temp folder."""
    monkeypatch.delenv("REPARAM_DATA_DIR", raising=False)
    monkeypatch.delenv("REPARAM_DATA_MIRROR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def idx_bytes(a: np.ndarray) -> bytes:
    """IDX encoding of ``a`` (uint8 or big-endian types), written independently of the reader."""
    codes = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
    header = bytes([0, 0, codes[a.dtype], a.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in a.shape)
    return header + a.tobytes()


def write_mnist_like(folder: Path, n_train: int, n_test: int, seed: int = 0, gz: bool = True):
    """Random MNIST-format files in ``folder``; returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        for kind, a in (("images-idx3", x), ("labels-idx1", y)):
            data = idx_bytes(a)
            name = f"{split}-{kind}-ubyte"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (folder / name).write_bytes(data)
        out[split] = (x, y)
    return out


def amat_text(x: np.ndarray, sep: str = " ", end: str = "\n") -> bytes:
    return "".join(sep.join(str(int(v)) for v in row) + end for row in x).encode()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/short/<file>`` announces the full length but sends half."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        if self.path.startswith("/short/"):
            data = (Path(self.directory) / self.path[len("/short/"):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def http_dir(tmp_path):
    """(folder served, base URL) of a ThreadingHTTPServer on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# Read before any test edits the environment: $REPARAM_DATA_DIR, else ../shared/data.
_REPO = Path(__file__).resolve().parents[2]
REAL_DATA = Path(os.environ.get("REPARAM_DATA_DIR", _REPO.parent / "shared" / "data"))


def _real(sub: str) -> Path:
    if not (REAL_DATA / sub).is_dir():
        pytest.skip(f"real data folder {REAL_DATA / sub} not present")
    return REAL_DATA


@pytest.fixture
def real_mnist_root() -> Path:
    """Data root holding mnist/t10k-*.gz (the MNIST test set only)."""
    return _real("mnist")


@pytest.fixture
def real_amat_root() -> Path:
    """Data root holding binarized_mnist/*.amat.gz."""
    return _real("binarized_mnist")
