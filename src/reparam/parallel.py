"""torch.distributed glue: ranks from ``torchrun``, sharding, per-example noise, rank-0 I/O.

Everything runs on PyTorch's own engine (``torch.distributed``, launched by ``torchrun``);
this module only decides *who does what* so that N processes give the numbers of one:

- :func:`init` / :func:`destroy` (or :func:`session`): the process group from torchrun's
  environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``),
  gloo on CPU, nccl on CUDA with ``device = cuda:LOCAL_RANK``. Without torchrun they are
  no-ops and :func:`rank` / :func:`world_size` are 0 / 1.
- :func:`split` / :func:`split_blocks`: contiguous, balanced, non-overlapping parts.
- :class:`GlobalBatchSampler`: the global batch of the user's size, drawn from a per-epoch
  permutation of the shared seed, cut into one contiguous slice per rank.
- :class:`ShardedNoise`: a noise source that draws for the *global* batch from a generator
  keyed by ``(seed, step, stream)`` and returns this rank's slice, so each example's noise
  does not depend on the number of processes.
- :func:`all_reduce_sum`, :func:`mean_metrics`, :func:`gather_rows`: reductions; ``gather_rows``
  is exact (every rank adds zeros outside its rows), so gathered values are bit-identical
  to a single process's.
- :func:`on_main`: run file writes on rank 0 only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from .noise import NoiseSource, Shape

__all__ = [
    "Part", "GlobalBatch", "GlobalBatchSampler", "ShardedNoise", "launched", "rank",
    "world_size", "local_rank", "is_main", "init", "destroy", "session", "barrier", "split",
    "split_blocks", "seed_for",
    "all_reduce_sum", "mean_metrics", "gather_rows", "on_main", "reduce_device",
]

T = TypeVar("T")
BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
STREAM_SHUFFLE = 0x5EED  # the key of the epoch permutations, apart from every noise stream


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (its ``RANK`` and ``WORLD_SIZE`` set)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def rank() -> int:
    """This process's global rank: the group's, else ``$RANK``, else 0."""
    return dist.get_rank() if dist.is_initialized() else _env_int("RANK", 0)


def world_size() -> int:
    """Number of processes: the group's, else ``$WORLD_SIZE``, else 1."""
    return dist.get_world_size() if dist.is_initialized() else _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """This process's rank on its node (``$LOCAL_RANK``, else 0): its CUDA device index."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    return rank() == 0


_process_rank, _process_world = rank, world_size  # for functions whose arguments shadow them


def _device(name: str) -> torch.device:
    """``auto``: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; ``cuda`` means
    ``cuda:LOCAL_RANK``; anything else is taken as given."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank())
    return device


_state: dict[str, torch.device] = {}


def init(device: str = "auto", timeout_s: float = 600.0) -> torch.device:
    """Join the process group when launched by torchrun; return this process's device.

    The backend follows the device (:data:`BACKENDS`: gloo for CPU, nccl for CUDA); the
    rendezvous is torchrun's (``env://``). Without torchrun nothing is initialized.
    Calling it again returns the device chosen the first time.
    """
    if "device" in _state:
        return _state["device"]
    dev = _device(device)
    if dev.type not in BACKENDS:
        raise ValueError(f"distributed runs support devices {sorted(BACKENDS)}, got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        torch.cuda.set_device(dev)
    if launched() and not dist.is_initialized():
        dist.init_process_group(BACKENDS[dev.type], timeout=timedelta(seconds=timeout_s),
                                device_id=dev if dev.type == "cuda" else None)
    _state["device"] = dev
    return dev


def destroy() -> None:
    """Leave the process group (if any) and forget the chosen device."""
    if dist.is_initialized():
        dist.destroy_process_group()
    _state.clear()


@contextmanager
def session(device: str = "auto", timeout_s: float = 600.0) -> Iterator[torch.device]:
    """``with session() as device:`` :func:`init` on entry, :func:`destroy` on exit."""
    try:
        yield init(device, timeout_s)
    finally:
        destroy()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def reduce_device() -> torch.device:
    """Where collectives run: the group's device under nccl, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return _state.get("device", torch.device("cuda", local_rank()))
    return torch.device("cpu")


def seed_for(*keys: int) -> int:
    """A 63-bit generator seed mixing integer ``keys`` (numpy's ``SeedSequence``), so
    neighbouring keys such as ``(seed, step)`` and ``(seed, step + 1)`` give unrelated streams."""
    if any(int(k) < 0 for k in keys):
        raise ValueError(f"seed keys must be non-negative integers, got {keys}")
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


@dataclass(frozen=True)
class Part:
    """This rank's contiguous part ``[start, stop)`` of an extent of ``total`` items."""

    start: int
    stop: int
    total: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def fraction(self) -> float:
        """``size / total`` (0 for an empty extent): the weight of this rank's mean in the
        global mean, e.g. a DDP loss ``fraction * world * local_mean`` averages to the
        global mean over the ranks."""
        return self.size / self.total if self.total else 0.0


def split(total: int, rank: int | None = None, world: int | None = None) -> Part:
    """Contiguous balanced parts: rank ``r`` of ``W`` gets ``total // W`` items, plus one
    for the first ``total % W`` ranks; parts are disjoint, in rank order, and cover
    ``range(total)``. A rank gets an empty part when ``total < W``."""
    r = _process_rank() if rank is None else rank
    w = _process_world() if world is None else world
    if w < 1 or not 0 <= r < w or total < 0:
        raise ValueError(f"split needs total >= 0 and 0 <= rank < world, got total={total}, "
                         f"rank={r}, world={w}")
    base, extra = divmod(total, w)
    start = r * base + min(r, extra)
    return Part(start, start + base + (r < extra), total)


def split_blocks(total: int, block: int, rank: int | None = None,
                 world: int | None = None) -> Part:
    """Like :func:`split` but in whole blocks of ``block`` items (the last may be short),
    so the blocks, and anything keyed by a block's index, are the same for every world size."""
    if block < 1:
        raise ValueError(f"block must be a positive number of items, got {block}")
    blocks = split(-(-total // block), rank, world)
    return Part(min(blocks.start * block, total), min(blocks.stop * block, total), total)


class GlobalBatch(NamedTuple):
    indices: torch.Tensor  # (part.size,) int64 rows of the dataset for this rank
    part: Part  # this rank's slice of the global batch (part.total = global batch size)


class GlobalBatchSampler:
    """Global batches of ``batch_size`` examples, each cut into per-rank contiguous slices.

    Epoch ``e`` visits ``perm_e = randperm(num_examples)`` from the generator seeded by
    ``seed_for(seed, e, STREAM_SHUFFLE)`` (the identity when ``shuffle=False``); global batch
    ``b`` is ``perm_e[b B : (b + 1) B]`` and rank ``r`` takes ``split(len(batch), r, W)`` of it.
    So the global batches are the same for every world size, no example is visited twice
    in an epoch, and the order changes every epoch. The last global batch has
    ``num_examples % B`` examples (dropped with ``drop_last``); it is split the same way,
    so when it has fewer examples than processes some ranks get an empty slice (weight a
    rank's loss by its ``part.fraction``). Every rank yields the same number of batches.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int = 0, *,
                 rank: int | None = None, world: int | None = None, shuffle: bool = True,
                 drop_last: bool = False) -> None:
        if num_examples < 1 or batch_size < 1:
            raise ValueError(f"num_examples and batch_size must be positive, got {num_examples} "
                             f"and {batch_size}")
        if drop_last and num_examples < batch_size:
            raise ValueError(f"drop_last with batch_size={batch_size} > num_examples="
                             f"{num_examples} leaves no batch")
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.rank = _process_rank() if rank is None else rank
        self.world = _process_world() if world is None else world
        split(0, self.rank, self.world)  # validates rank and world
        self.shuffle, self.drop_last, self.epoch = shuffle, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch that ``iter(sampler)`` visits (as torch's ``DistributedSampler``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        n, b = self.num_examples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def permutation(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_examples)
        gen = torch.Generator().manual_seed(seed_for(self.seed, epoch, STREAM_SHUFFLE))
        return torch.randperm(self.num_examples, generator=gen)

    def batches(self, epoch: int, start: int = 0) -> Iterator[GlobalBatch]:
        """This rank's slices of global batches ``start, start + 1, ...`` of ``epoch``
        (``start`` resumes mid-epoch)."""
        perm = self.permutation(epoch)
        for b in range(start, len(self)):
            batch = perm[b * self.batch_size:(b + 1) * self.batch_size]
            part = split(len(batch), self.rank, self.world)
            yield GlobalBatch(batch[part.start:part.stop], part)

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Index tensors of this rank (usable as a ``DataLoader`` ``batch_sampler``)."""
        return (b.indices for b in self.batches(self.epoch))


class ShardedNoise(NoiseSource):
    """This rank's slice of noise drawn for the global batch (the batch is axis ``batch_dim``).

    A call with ``shape[batch_dim] == part.size`` draws ``shape`` with ``part.total`` at
    ``batch_dim`` from one generator seeded by ``seed_for(seed, step, stream)`` and returns
    ``[part.start, part.stop)`` of that axis. Successive calls continue the same stream,
    the same on every rank, so concatenating the slices of ranks ``0..W-1`` gives the
    world-size-1 draw bit for bit. Every rank draws the whole global batch: cheap for the
    noise of a latent (``S x B x L`` numbers). ``batch_dim=-2`` fits ``(S, B, L)`` latent
    noise and ``(B, D)`` pixel noise. The generator lives on the device of the first call.
    """

    def __init__(self, seed: int, step: int, part: Part, *, batch_dim: int = -2,
                 stream: int = 0) -> None:
        self.seed, self.step, self.part, self.batch_dim, self.stream = seed, step, part, batch_dim, stream
        self._gen: torch.Generator | None = None

    def _generator(self, device: torch.device) -> torch.Generator:
        device = torch.device(device)
        if self._gen is None:
            self._gen = torch.Generator(device).manual_seed(seed_for(self.seed, self.step,
                                                                     self.stream))
        elif self._gen.device.type != device.type:
            raise ValueError(f"ShardedNoise draws on {self._gen.device}, asked for {device}")
        return self._gen

    def _global(self, shape: Shape) -> tuple[torch.Size, int]:
        shape = torch.Size(shape)
        dim = self.batch_dim % len(shape) if len(shape) else 0
        if not shape or shape[dim] != self.part.size:
            raise ValueError(f"ShardedNoise expects this rank's batch of {self.part.size} at axis "
                             f"{self.batch_dim}, got shape {tuple(shape)}")
        return torch.Size((*shape[:dim], self.part.total, *shape[dim + 1:])), dim

    def _slice(self, eps: torch.Tensor, dim: int) -> torch.Tensor:
        if self.part.size == self.part.total:
            return eps
        return eps.narrow(dim, self.part.start, self.part.size).contiguous()

    def normal(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        full, dim = self._global(shape)
        return self._slice(torch.randn(full, dtype=dtype, device=device,
                                       generator=self._generator(device)), dim)

    def uniform(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        full, dim = self._global(shape)
        u = torch.empty(full, dtype=dtype, device=device)
        u.uniform_(torch.finfo(dtype).tiny, 1.0, generator=self._generator(device))
        return self._slice(u, dim)

    def __repr__(self) -> str:
        return (f"ShardedNoise(seed={self.seed}, step={self.step}, part={self.part}, "
                f"stream={self.stream})")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum over ranks (a new tensor, on ``t``'s device); ``t`` alone
    without a process group."""
    if not dist.is_initialized():
        return t.clone()
    out = t.detach().to(reduce_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device)


def mean_metrics(metrics: dict[str, float], weight: float = 1.0) -> dict[str, float]:
    """``sum_r w_r m_r / sum_r w_r`` for every key (the same keys on every rank), in
    float64 with one all-reduce: with ``w_r`` the rank's number of examples and ``m_r``
    its per-example means, the global per-example means."""
    keys = sorted(metrics)
    local = torch.tensor([weight * float(metrics[k]) for k in keys] + [float(weight)],
                         dtype=torch.float64)
    total = all_reduce_sum(local)
    if total[-1] <= 0:
        raise ValueError(f"mean_metrics: the weights sum to {float(total[-1])}, not > 0")
    return {k: float(v) for k, v in zip(keys, total[:-1] / total[-1], strict=True)}


def gather_rows(local: torch.Tensor, start: int, total: int) -> torch.Tensor:
    """The (total, ...) tensor whose rows ``[start, start + len(local))`` come from each
    rank's ``local``: every rank fills its rows, zeros elsewhere, one sum all-reduce.
    Adding zeros is exact, so the result is bit-identical to one process's rows (the
    ranks' row ranges must be disjoint). Returned on every rank."""
    full = torch.zeros((total, *local.shape[1:]), dtype=local.dtype, device=local.device)
    full[start:start + local.shape[0]] = local
    return all_reduce_sum(full) if dist.is_initialized() else full


def on_main(fn: Callable[..., T], *args: Any, sync: bool = True, **kwargs: Any) -> T | None:
    """``fn(*args, **kwargs)`` on rank 0 only (``None`` elsewhere); with ``sync`` every rank
    then waits at a barrier, so files written by rank 0 exist once any rank goes on."""
    result = fn(*args, **kwargs) if is_main() else None
    if sync:
        barrier()
    return result
