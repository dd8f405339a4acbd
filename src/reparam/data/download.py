"""Where data files live and how missing ones are fetched.

Lookup root: the ``data_dir`` argument, else ``$REPARAM_DATA_DIR``, else the cache
(``$XDG_CACHE_HOME/reparam`` or ``~/.cache/reparam``). A file ``name`` of a dataset with
folder ``sub`` is found at ``root/sub/name`` or ``root/name``, gzipped or not. Missing files
are downloaded into ``root/sub`` with ``urllib``: streamed into a temporary file beside the
target, checked (md5 of the bytes, and/or a content check), then renamed atomically, so a
failed or interrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from http.client import HTTPException
from pathlib import Path

from ..errors import ReparamError

ENV_DATA_DIR = "REPARAM_DATA_DIR"
ENV_MIRROR = "REPARAM_DATA_MIRROR"


class DataFileError(ReparamError):
    """A data file is corrupt, truncated, or not what it claims to be."""


class ChecksumError(DataFileError):
    """A downloaded file's checksum differs from the published one."""


class MissingDataError(ReparamError, FileNotFoundError):
    """Data files are absent and could not be downloaded."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reparam"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir``, else ``$REPARAM_DATA_DIR``, else :func:`cache_dir`."""
    chosen = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR)
    return Path(chosen).expanduser() if chosen else cache_dir()


def locate(root: Path, subdir: str, name: str) -> Path | None:
    """First existing of ``root/subdir/name`` and ``root/name``, with or without ``.gz``."""
    stem = name[:-3] if name.endswith(".gz") else name
    for folder in (root / subdir, root):
        for candidate in (name, stem, stem + ".gz"):
            if (folder / candidate).is_file():
                return folder / candidate
    return None


def read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic ``1f 8b``."""
    data = Path(path).read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:
        raise DataFileError(f"{path}: corrupt or truncated gzip file ({err})") from None


def fetch(
    urls: Sequence[str],
    dest: Path,
    md5: str | None = None,
    check: Callable[[Path], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the first of ``urls`` that works to ``dest`` (atomic rename after checks).

    ``md5`` is compared with the downloaded bytes; ``check(tmp_path)`` may raise
    :class:`DataFileError` to reject content. Raises :class:`MissingDataError` listing
    why each URL failed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                digest, size = hashlib.md5(usedforsecurity=False), 0
                while chunk := r.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                announced = r.headers.get("Content-Length")
            if announced is not None and size != int(announced):
                raise DataFileError(f"truncated download: {size} of {announced} bytes")
            if md5 is not None and digest.hexdigest() != md5:
                raise ChecksumError(f"md5 {digest.hexdigest()} != expected {md5}")
            if check is not None:
                check(tmp)
            tmp.chmod(0o644)  # mkstemp makes 0600; a cache is read by whoever shares it
            os.replace(tmp, dest)
            return dest
        except (OSError, ValueError, EOFError, HTTPException) as err:  # URLError, DataFileError
            errors.append(f"{url}: {type(err).__name__}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    raise MissingDataError("download failed:\n  " + "\n  ".join(errors))


def ensure_files(
    names: Sequence[str],
    subdir: str,
    homes: Sequence[str],
    md5: dict[str, str] | None = None,
    check: Callable[[str, Path], None] | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    mirror: str | None = None,
) -> dict[str, Path]:
    """Paths of ``names`` under the data root, downloading missing ones from ``homes``.

    ``mirror`` (or ``$REPARAM_DATA_MIRROR``) is a base URL tried before the public homes.
    """
    root = data_root(data_dir)
    found = {name: locate(root, subdir, name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if not missing:
        return found  # type: ignore[return-value]
    hint = (
        f"missing data files {missing} in {root / subdir} (looked in {root / subdir} and {root}, "
        f"with or without .gz). Put them there, or point data_dir / --data-dir / ${ENV_DATA_DIR} "
        f"at a folder holding {subdir}/<file>; public home: {homes[0]}"
    )
    if not download:
        raise MissingDataError(hint)
    bases = [b for b in (mirror or os.environ.get(ENV_MIRROR), *homes) if b]
    for name in missing:
        urls = [base.rstrip("/") + "/" + name for base in bases]
        on_tmp = None if check is None else (lambda p, n=name: check(n, p))
        print(f"reparam: downloading {name} to {root / subdir}", file=sys.stderr)
        try:
            found[name] = fetch(urls, root / subdir / name, (md5 or {}).get(name), on_tmp)
        except MissingDataError as err:
            raise MissingDataError(f"{hint}\n{err}") from None
        except OSError as err:  # e.g. a read-only data_dir
            raise MissingDataError(f"{hint}\ncannot write there: {err}") from None
    return found  # type: ignore[return-value]
