"""Term-by-term series over many entries at once, each entry paying for its own terms.

A series (Gamma, Beta) keeps its running quantities as the rows of one stacked float64
state ``(rows, m)`` updated in place, a few kernels a term. Every ``CHECK`` terms the
converged entries are written out and, once they are ``1/DROP_AT`` of the working set,
dropped (one ``nonzero``, one gather). All buffers are allocated once per call and reused
by every block of it: on a busy machine touching fresh memory costs more than the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

CHECK = 16  # terms between convergence checks
DROP_AT = 4  # compact once a quarter of the working set has converged

Step = Callable[[tuple[torch.Tensor, ...], torch.Tensor, int, torch.Tensor], None]
Done = Callable[[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor], torch.Tensor]


class SeriesRunner:
    """Reusable buffers for blocks of at most ``size`` entries and a state of ``rows`` rows;
    ``keep`` is the slice of rows returned (the sums)."""

    def __init__(self, rows: int, keep: slice, size: int, device: torch.device):
        f64 = {"dtype": torch.float64, "device": device}
        self.rows, self.keep, self.size = rows, keep, size
        self.states = [torch.empty(rows * size, **f64), torch.empty(rows * size, **f64)]
        self.tmp = torch.empty(3 * size, **f64)
        n_out = len(range(rows)[keep])
        self.out = torch.empty(n_out * size, **f64)
        self.done = torch.empty(size, dtype=torch.bool, device=device)
        self.nz = torch.empty((size, 1), dtype=torch.long, device=device)
        self.idx = [torch.empty(size, dtype=torch.long, device=device) for _ in range(2)]

    def state(self, m: int) -> torch.Tensor:
        """The initial state of a block of ``m`` entries (to be filled by the caller)."""
        return self.states[0][: self.rows * m].view(self.rows, m)

    def run(self, m: int, step: Step, done: Done, terms: int) -> torch.Tensor:
        """Sum up to ``terms`` terms: ``step(rows, state, n, tmp)`` updates the state in place
        for term ``n``, ``done(rows, tmp, out)`` writes the converged mask into ``out``.
        Returns the ``keep`` rows, ``(k, m)``, a view into the buffers (valid until the next run)."""
        cur, state, k = 0, self.state(m), m
        out = self.out[: (self.out.numel() // self.size) * m].view(-1, m)
        idx = None
        rows, tmp = state.unbind(), self.tmp[: 3 * k].view(3, k)
        for n in range(1, terms + 1):
            step(rows, state, n, tmp)
            if n % CHECK:
                continue
            finished = done(rows, tmp, self.done[:k])
            count = int(finished.sum())
            if count == 0 or (count < k and count * DROP_AT < k):
                continue
            if idx is None:
                out.copy_(state[self.keep])
            else:
                out.index_copy_(1, idx, state[self.keep])
            if count == k:
                return out
            self.nz.resize_(0, 1)
            keep = torch.nonzero(finished.logical_not_(), out=self.nz).view(-1)
            k, cur = keep.numel(), 1 - cur
            nxt = self.states[cur][: self.rows * k].view(self.rows, k)
            state = torch.index_select(state, 1, keep, out=nxt)
            new_idx = self.idx[cur][:k]
            idx = new_idx.copy_(keep) if idx is None else torch.index_select(idx, 0, keep,
                                                                            out=new_idx)
            rows, tmp = state.unbind(), self.tmp[: 3 * k].view(3, k)
        if idx is None:
            return out.copy_(state[self.keep])
        return out.index_copy_(1, idx, state[self.keep])
