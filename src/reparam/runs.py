"""The run directory: one writer (a lock), config, weights, atomic checkpoints, metrics,
history. No pickle.

* **One run, one directory.** :func:`open_run_dir` holds an exclusive ``fcntl.flock`` on
  ``RUN/.lock`` (its text names the holder: pid, host, start time, command) while a run
  writes; the kernel drops the lock when the process dies, so a stale lock never blocks.
  Default directories are ``runs/<YYYYmmdd-HHMMSS>-<6 hex>``, created with an exclusive
  ``mkdir``. A directory that already holds files is refused unless the run resumes it or
  overwrites it.
* **Writes are atomic** (temporary file, ``fsync``, ``os.replace``) and follow the umask
  (mode ``0o666 & ~umask``, as ``open()`` gives). A full disk or a read-only folder raises
  :class:`~reparam.errors.DiskFullError` / :class:`~reparam.errors.WriteError` and leaves the
  previous file as it was.
* **Weights are never non-finite**: :func:`save_weights` refuses NaN / inf tensors, and
  :func:`load_weights` refuses files holding them, truncated files and corrupt headers.
* **Weights know their model**: the model options (``reparam.vae.factory.DEFAULTS`` keys) are
  stored in the safetensors metadata (``reparam.model_spec``) and compared with the run's
  ``config.json`` at load; files written before this check load as before.
* **metrics.json is strict JSON**: non-finite floats are written as ``null``.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import (
    CorruptFileError,
    DiskFullError,
    IncompatibleRunError,
    NonFiniteError,
    RunDirError,
    RunExistsError,
    RunLockedError,
    WriteError,
)

CHECKPOINT = "checkpoint.safetensors"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
LOCK = ".lock"
SET_ASIDE = ".overwritten"  # an overwritten run waits here until the new run finishes
SPEC_KEY = "reparam.model_spec"
_PRIVATE = {LOCK, SET_ASIDE}


# ---------------------------------------------------------------- atomic, umask-true writes

def current_umask() -> int:
    """The process umask, read from ``/proc`` where it can be (no global change), else set
    and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_error(path: str | Path, err: OSError) -> WriteError:
    """The named error for an ``OSError`` raised while writing ``path``."""
    reason = err.strerror or str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"no space left on the device writing {path}",
                             hint="the previous file is unchanged; free some space and retry")
    return WriteError(f"cannot write {path}: {reason}",
                      hint="make the folder writable or choose another location")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, chmod to ``0o666 & ~umask``,
    then ``os.replace``: ``path`` holds the old bytes or the new, never a mix."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise write_error(path, err) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, err) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN / inf)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (non-finite floats as ``null``), written atomically."""
    text = json.dumps(strict_json(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path} is not valid JSON ({err})",
                               hint="restore the file or delete it") from None


# ---------------------------------------------------------------- run directory and lock

def new_run_dir(root: str | Path = "runs") -> Path:
    """A fresh ``root/<YYYYmmdd-HHMMSS>-<6 hex>``, created by an exclusive ``mkdir``, so two
    runs started in the same second never share one."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for _ in range(64):
            path = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as err:
        raise write_error(root, err) from None
    raise RunDirError(f"cannot create a unique run directory under {root}")


def prepare_run_dir(out: str | Path | None) -> Path:
    """Create the run directory (default :func:`new_run_dir`) and check it is writable."""
    path = Path(out) if out else new_run_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a probe of its own: two writers starting on one --out must not unlink each other's
        # (the loser then meets the lock, as it should, not a vanished file)
        probe = path / f".write-test-{os.getpid()}-{secrets.token_hex(3)}.tmp"
        probe.write_bytes(b"")
        probe.unlink(missing_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot write to run directory {str(path)!r}: {err.strerror or err}",
                          hint="choose a writable --out") from None
    return path


@dataclass
class RunDir:
    """A run directory held by this process (see :func:`open_run_dir`)."""

    path: Path
    fd: int = field(repr=False)
    set_aside: Path | None = None
    depth: int = 1


_HELD: dict[Path, RunDir] = {}


def lock_holder(path: str | Path) -> str:
    """Who holds (or last held) ``path/.lock``, in words."""
    try:
        info = json.loads((Path(path) / LOCK).read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return (f"pid {info.get('pid')} on host {info.get('host')} (since {info.get('started')}: "
            f"{info.get('command')})")


def _acquire(path: Path) -> int:
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as err:
        raise write_error(path / LOCK, err) from None
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = lock_holder(path)
        for _ in range(40):  # the holder writes who it is just after it locks: wait for it
            if holder != "another process":
                break
            time.sleep(0.025)
            holder = lock_holder(path)
        raise RunLockedError(f"run directory {path} is in use by {holder}",
                             hint="wait for that run to finish, or choose another --out") from None
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(["reparam", *sys.argv[1:]])}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    return fd


def _release(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor drops the flock


def run_contents(path: Path) -> list[Path]:
    """What a run directory holds, less the lock, an overwritten run set aside and stale
    temporary files."""
    return sorted(p for p in path.iterdir()
                  if p.name not in _PRIVATE and not (p.name.startswith(".") and p.name.endswith(".tmp")))


def _clean_stale(path: Path) -> None:
    """Remove temporary files that a killed writer left (safe: this process holds the lock)."""
    for p in path.glob(".*.tmp"):
        p.unlink(missing_ok=True)


def _set_aside(path: Path, contents: list[Path]) -> Path:
    """Move an existing run into ``path/.overwritten`` (restored if the new run fails early)."""
    if not (path / CONFIG).is_file():
        raise RunExistsError(f"--out {path} is not empty and holds no run (no {CONFIG})",
                             hint="--overwrite replaces run directories only; choose another --out")
    aside = path / SET_ASIDE
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    for p in contents:
        p.rename(aside / p.name)
    return aside


def _restore(path: Path, aside: Path) -> None:
    """Undo :func:`_set_aside` when the new run failed before its first checkpoint."""
    if (path / CHECKPOINT).exists():
        return  # the new run made progress: keep it (resumable); the old one stays set aside
    for p in run_contents(path):
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for p in aside.iterdir():
        p.rename(path / p.name)
    aside.rmdir()


def _remove_failed_start(path: Path, created: bool) -> None:
    """A new run that failed before its first checkpoint leaves nothing behind (the folder
    too, when this run created it)."""
    if (path / CHECKPOINT).exists():
        return  # resumable: keep it
    for p in run_contents(path):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink()
    if created:
        (path / LOCK).unlink(missing_ok=True)
        try:
            path.rmdir()
        except OSError:
            pass


@contextmanager
def open_run_dir(out: str | Path | None, *, resume: bool = False,
                 overwrite: bool = False) -> Iterator[RunDir]:
    """Create (or open) the run directory and hold its lock while the block runs.

    ``out=None``: a fresh :func:`new_run_dir`. A directory with files in it is refused
    (:class:`~reparam.errors.RunExistsError`) unless ``resume`` (continue the run in it) or
    ``overwrite`` (the old run is set aside in ``.overwritten``, deleted when the block ends
    normally and restored if it fails before writing a checkpoint). A directory held by
    another process raises :class:`~reparam.errors.RunLockedError` naming the holder. A new
    run whose block fails before the first checkpoint leaves nothing behind. Re-entrant
    within one process (an inner call shares the outer lock and decisions).
    """
    existed = out is not None and Path(out).is_dir()
    path = prepare_run_dir(out)
    key = path.resolve()
    if key in _HELD:
        held = _HELD[key]
        held.depth += 1
        try:
            yield held
        finally:
            held.depth -= 1
        return
    run = RunDir(path, _acquire(path))
    try:
        _clean_stale(path)
        contents = run_contents(path)
        if resume and not (path / CONFIG).is_file():
            raise RunDirError(f"{path} holds no run to resume (no {CONFIG})",
                              hint="start a new run with --out instead of --resume")
        if contents and not resume:
            if not overwrite:
                raise RunExistsError(f"--out {path} already holds a run",
                                     hint="pass --resume to continue it, --overwrite to replace "
                                          "it, or choose another --out")
            run.set_aside = _set_aside(path, contents)
        _HELD[key] = run
        yield run
    except BaseException:
        if run.set_aside is not None:
            _restore(path, run.set_aside)
        elif key in _HELD and not resume:
            _remove_failed_start(path, created=not existed)
        raise
    else:
        shutil.rmtree(path / SET_ASIDE, ignore_errors=True)
    finally:
        _HELD.pop(key, None)
        _release(run.fd)


# ---------------------------------------------------------------- safetensors I/O

def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [k for k, v in tensors.items()
            if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())]


def _names(keys: list[str], limit: int = 3) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def config_spec(config_path: str | Path) -> dict[str, Any] | None:
    """The model options of a run's ``config.json`` (``None`` when it is absent or unreadable)."""
    from .vae.factory import DEFAULTS

    try:
        values = json.loads(Path(config_path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(values, dict):
        return None
    return {k: values[k] for k in DEFAULTS if k in values}


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None, *,
                 spec: dict[str, Any] | None = None) -> None:
    """Weights as safetensors, written atomically; refuses non-finite tensors.

    ``spec`` (default: the model options of ``config.json`` beside ``path``) is stored in the
    metadata, so a load can tell that ``config.json`` was edited to another model.
    """
    path = Path(path)
    tensors = _contiguous(state_dict)
    bad = non_finite(tensors)
    if bad:
        raise NonFiniteError(f"refusing to write {path}: non-finite values in {_names(bad)}",
                             hint=f"any previous {path.name} is unchanged; the run diverged "
                                  "(try a lower --lr)")
    meta = dict(metadata or {})
    spec = spec if spec is not None else config_spec(path.parent / CONFIG)
    if spec is not None:
        meta[SPEC_KEY] = json.dumps(spec, sort_keys=True)
    atomic_write_bytes(path, st_save(tensors, metadata=meta or None))


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; named errors for a missing, truncated or
    corrupt file and for non-finite values."""
    path = Path(path)
    if not path.is_file():
        raise CorruptFileError(f"weights file not found: {path}",
                               hint="train the run (or resume it) to write it")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        size = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + size]).get("__metadata__") or {}
    except Exception as err:  # SafetensorError, a header that is not JSON, ...
        raise CorruptFileError(f"{path} is truncated or corrupt ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else 'unreadable'})",
                               hint="restore it, or retrain / resume the run") from None
    bad = non_finite(tensors)
    if bad:
        raise CorruptFileError(f"{path} holds non-finite values (NaN / inf) in {_names(bad)}",
                               hint="the file is corrupt or from a diverged run; restore it or retrain")
    return tensors, meta


def check_spec(path: Path, meta: dict[str, str], expected: dict[str, Any] | None) -> None:
    """Refuse weights written for other model options than ``expected`` (keys in both)."""
    if expected is None or SPEC_KEY not in meta:
        return  # no config to compare with, or a file written before specs were stored
    stored = json.loads(meta[SPEC_KEY])
    expected = json.loads(json.dumps(expected))
    diff = sorted(k for k in stored.keys() & expected.keys() if stored[k] != expected[k])
    if diff:
        detail = ", ".join(f"{k}: {stored[k]!r} in the weights, {expected[k]!r} in {CONFIG}"
                           for k in diff)
        raise IncompatibleRunError(f"{path} was written for another model ({detail})",
                                   hint=f"restore {CONFIG}'s model settings, or retrain")


def load_weights(path: str | Path, device: str | torch.device = "cpu", *,
                 spec: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, checked (see :func:`read_safetensors`) and compared with
    ``spec`` (default: the model options of ``config.json`` beside ``path``)."""
    path = Path(path)
    tensors, meta = read_safetensors(path)
    check_spec(path, meta, spec if spec is not None else config_spec(path.parent / CONFIG))
    return {k: v.to(device) for k, v in tensors.items()}


def load_state_dict(model: torch.nn.Module, tensors: dict[str, torch.Tensor],
                    source: str | Path) -> None:
    """``model.load_state_dict(tensors)`` with a named error for missing, unexpected or
    differently shaped tensors (instead of torch's ``size mismatch`` RuntimeError)."""
    own = model.state_dict()
    missing = sorted(own.keys() - tensors.keys())
    unexpected = sorted(tensors.keys() - own.keys())
    shapes = [f"{k} {tuple(tensors[k].shape)} in the file, {tuple(own[k].shape)} for the model"
              for k in sorted(own.keys() & tensors.keys()) if own[k].shape != tensors[k].shape]
    problems = ([f"missing {_names(missing)}"] if missing else []) + \
        ([f"unexpected {_names(unexpected)}"] if unexpected else []) + shapes[:3]
    if problems:
        raise IncompatibleRunError(f"{source} does not fit the model of {CONFIG}: "
                                   + "; ".join(problems),
                                   hint=f"was {CONFIG} edited? restore its model settings, or retrain")
    model.load_state_dict(tensors)


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], extra: dict[str, torch.Tensor] | None = None, *,
                    spec: dict[str, Any] | None = None) -> None:
    """One safetensors file: model and optimizer tensors; JSON-able state in its metadata."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, pstate in opt["state"].items():
        for key, value in pstate.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value)
    for key, value in (extra or {}).items():
        tensors[f"extra.{key}"] = value
    meta = {"state": json.dumps(state), "param_groups": json.dumps(opt["param_groups"])}
    save_weights(Path(run_dir) / CHECKPOINT, tensors, metadata=meta, spec=spec)


def load_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    device: str | torch.device = "cpu", *, spec: dict[str, Any] | None = None,
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model and optimizer in place; return (state, extra tensors)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise RunDirError(f"no checkpoint to resume from: {path} does not exist",
                          hint="start the run again without --resume")
    tensors, meta = read_safetensors(path)
    check_spec(path, meta, spec if spec is not None else config_spec(path.parent / CONFIG))
    try:
        state, groups = json.loads(meta["state"]), json.loads(meta["param_groups"])
    except (KeyError, ValueError) as err:
        raise CorruptFileError(f"{path}: its training state is missing or corrupt ({err})",
                               hint="restore the file, or start the run again") from None
    tensors = {k: v.to(device) for k, v in tensors.items()}
    load_state_dict(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, path)
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    if "step" in next(iter(opt_state.values()), {}):
        for st in opt_state.values():
            st["step"] = st["step"].cpu()
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    extra = {k[6:]: v.cpu() for k, v in tensors.items() if k.startswith("extra.")}
    return state, extra


# ---------------------------------------------------------------- history

def write_history(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Per-epoch rows as CSV (atomically)."""
    if not rows:
        return
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def read_history(path: str | Path) -> list[dict[str, float]]:
    try:
        with open(path, newline="") as fh:
            return [{k: int(float(v)) if k == "epoch" else float(v) for k, v in row.items()}
                    for row in csv.DictReader(fh)]
    except (ValueError, TypeError) as err:
        raise CorruptFileError(f"{path} is not a readable history ({err})",
                               hint="restore it or delete it") from None
