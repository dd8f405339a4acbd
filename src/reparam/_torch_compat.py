"""Every private torch API reparam uses, each behind one function with a public fallback.

``pyproject.toml`` allows ``torch>=2.4,<3``; a private name (``torch._*``, ``torch.ops.*``,
``constraints._*``, an optimizer's hook dicts) may change in any of those releases. Each is
looked up once here, by a feature check; when the lookup fails the function computes the
same thing with public torch, so such a release makes reparam slower, never broken. Tests
force every fallback (``tests/test_torch_compat.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.distributions import constraints
from torch.optim import optimizer as _optimizer_module

__all__ = [
    "tanh_backward", "threshold_backward", "has_fused_adam", "fused_adam_",
    "optimizer_has_hooks", "bf16_supported", "GreaterThan",
]


def _aten(name: str) -> Callable[..., torch.Tensor] | None:
    """``torch.ops.aten.<name>``, or None where this torch has no such op."""
    try:
        return getattr(torch.ops.aten, name)
    except (AttributeError, RuntimeError):
        return None


# The feature checks, resolved once at import (tests replace them to force the fallbacks).
_TANH_BACKWARD = _aten("tanh_backward")
_THRESHOLD_BACKWARD = _aten("threshold_backward")
_FUSED_ADAM = getattr(torch, "_fused_adam_", None)
_FOREACH_ADD = getattr(torch, "_foreach_add_", None)


def tanh_backward(grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``grad * (1 - y^2)`` for ``y = tanh(x)`` (ATen's fused kernel where torch has it)."""
    if _TANH_BACKWARD is not None:
        return _TANH_BACKWARD(grad, y)
    return grad * (1 - y * y)


def threshold_backward(grad: torch.Tensor, y: torch.Tensor, threshold: float = 0.0
                       ) -> torch.Tensor:
    """``grad`` where ``y > threshold``, else 0 (the ReLU backward from its output)."""
    if _THRESHOLD_BACKWARD is not None:
        return _THRESHOLD_BACKWARD(grad, y, threshold)
    return grad.masked_fill(y <= threshold, 0)


def has_fused_adam() -> bool:
    """Whether :func:`fused_adam_` can call torch's fused Adam kernel directly."""
    return _FUSED_ADAM is not None and _FOREACH_ADD is not None


def fused_adam_(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor],
                exp_avgs: Sequence[torch.Tensor], exp_avg_sqs: Sequence[torch.Tensor],
                steps: Sequence[torch.Tensor], *, lr: float, beta1: float, beta2: float,
                weight_decay: float, eps: float) -> None:
    """``steps += 1`` and one fused Adam update in place: the call ``Adam(fused=True).step``
    ends in. There is no public spelling of it: callers check :func:`has_fused_adam` first
    and otherwise call ``optimizer.step()`` (the same update, with its per-step Python)."""
    add, fused = _FOREACH_ADD, _FUSED_ADAM
    if add is None or fused is None:
        raise RuntimeError("this torch has no fused Adam kernel: call optimizer.step() instead")
    add(steps, 1)  # lists or tuples of tensors, as AdamStep holds them
    fused(params, grads, exp_avgs, exp_avg_sqs, [], steps,
          lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps,
          amsgrad=False, maximize=False, grad_scale=None, found_inf=None)


_HOOK_DICTS = ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks")
_GLOBAL_HOOK_DICTS = ("_global_optimizer_pre_hooks", "_global_optimizer_post_hooks")


def optimizer_has_hooks(optimizer: torch.optim.Optimizer) -> bool:
    """Whether step hooks are registered on ``optimizer`` or globally. True (so the caller
    goes through ``optimizer.step()``, which runs them) where this torch keeps hooks
    elsewhere and they cannot be seen."""
    own = [getattr(optimizer, name, None) for name in _HOOK_DICTS]
    shared = [getattr(_optimizer_module, name, None) for name in _GLOBAL_HOOK_DICTS]
    if any(d is None for d in own + shared):
        return True
    return any(bool(d) for d in own + shared)


def _cpuinfo_flags() -> set[str]:
    """The CPU feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _mkldnn_bf16_probe() -> Callable[[], bool] | None:
    """``torch.ops.mkldnn._is_mkldnn_bf16_supported``, looked up at each call (it runs once
    per training run), or None where this torch has no such op."""
    try:
        return torch.ops.mkldnn._is_mkldnn_bf16_supported
    except (AttributeError, RuntimeError):
        return None


_BF16_PROBE = _mkldnn_bf16_probe  # the feature check (tests replace it)


def bf16_supported() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX) through oneDNN.

    oneDNN's own probe where torch exposes it; else the CPU's flags (Linux), else False."""
    if not torch.backends.mkldnn.is_available():
        return False
    probe = _BF16_PROBE()
    if probe is not None:
        return bool(probe())
    if sys.platform.startswith("linux"):
        return bool({"avx512_bf16", "amx_bf16"} & _cpuinfo_flags())
    return False


class _GreaterThanFallback(constraints.Constraint):
    """``value > lower_bound``, with public torch only (the fallback for :data:`GreaterThan`)."""

    def __init__(self, lower_bound: torch.Tensor | float) -> None:
        self.lower_bound = lower_bound
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return self.lower_bound < value

    def __repr__(self) -> str:
        return f"{type(self).__name__[1:]}(lower_bound={self.lower_bound})"


def _greater_than_base() -> type[constraints.Constraint]:
    """torch's ``constraints.greater_than`` class where it is one with ``lower_bound``."""
    base = getattr(constraints, "greater_than", None)
    if isinstance(base, type) and issubclass(base, constraints.Constraint):
        try:
            if base(0.0).lower_bound == 0.0:  # type: ignore[call-arg, attr-defined]
                return base
        except (TypeError, AttributeError):
            pass
    return _GreaterThanFallback


#: The base class of a ``value > lower_bound`` constraint (subclass it, call
#: ``super().__init__(lower_bound)``).
GreaterThan: type[constraints.Constraint] = _greater_than_base()
