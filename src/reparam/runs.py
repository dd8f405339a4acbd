"""The run directory: config, weights, atomic checkpoints, metrics, history. No pickle."""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

CHECKPOINT = "checkpoint.safetensors"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def prepare_run_dir(out: str | Path | None) -> Path:
    """Create the run directory (default ``runs/<timestamp>``) and check it is writable."""
    path = Path(out) if out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write to run directory {str(path)!r}: {err.strerror or err}") from None
    return path


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """Weights as safetensors, written atomically."""
    atomic_write_bytes(path, st_save(_contiguous(state_dict), metadata=metadata))


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    return {k: v.to(device) for k, v in st_load(path.read_bytes()).items()}


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], extra: dict[str, torch.Tensor] | None = None) -> None:
    """One safetensors file: model and optimizer tensors; JSON-able state in its metadata."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, pstate in opt["state"].items():
        for key, value in pstate.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value)
    for key, value in (extra or {}).items():
        tensors[f"extra.{key}"] = value
    meta = {"state": json.dumps(state), "param_groups": json.dumps(opt["param_groups"])}
    save_weights(run_dir / CHECKPOINT, tensors, metadata=meta)


def load_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    device: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model and optimizer in place; return (state, extra tensors)."""
    from safetensors import safe_open

    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise ValueError(f"no checkpoint to resume from: {path} does not exist")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_weights(path, device)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    if "step" in next(iter(opt_state.values()), {}):
        for st in opt_state.values():
            st["step"] = st["step"].cpu()
    optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
    extra = {k[6:]: v.cpu() for k, v in tensors.items() if k.startswith("extra.")}
    return json.loads(meta["state"]), extra


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
    with open(path, newline="") as fh:
        return [{k: int(float(v)) if k == "epoch" else float(v) for k, v in row.items()}
                for row in csv.DictReader(fh)]
