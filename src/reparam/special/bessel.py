"""Modified Bessel functions for von Mises(-Fisher): the ratio ``A_nu = I_{nu+1} / I_nu`` and
``log I_nu``, differentiable in the argument, float64 inside, for ``nu`` an integer or a
half-integer (``nu = d/2 - 1`` on the sphere ``S^{d-1}``).

``A_nu(x)`` is Gauss's continued fraction ``x / (2(nu+1) + x^2 / (2(nu+2) + ...))``,
evaluated bottom-up from depth ``40 + 8 sqrt(max x)`` (the neglected tail is below
``exp(-depth^2 / x)``). ``log I_nu = log I_nu0 + sum_{k=nu0}^{nu-1} log A_k`` with the
closed forms ``I_0 = i0e(x) e^x`` and ``I_{1/2} = sqrt(2 / (pi x)) sinh x``; the ``A_k`` below
``A_{nu-1}`` (one continued fraction) come from the stable downward recurrence
``A_{k-1} = x / (2k + x A_k)`` (two kernels an order, not a fraction each). Derivatives:
``A_nu' = 1 - A_nu^2 - (2 nu + 1) A_nu / x`` and ``(log I_nu)' = A_nu + nu / x``.
"""

from __future__ import annotations

import math

import torch


def _check_order(nu: float) -> float:
    if nu < 0 or (2 * nu) != int(2 * nu):
        raise ValueError(f"Bessel order nu must be a non-negative integer or half-integer, got {nu}")
    return float(nu)


def _ratio(nu: float, x: torch.Tensor) -> torch.Tensor:
    if x.numel() == 0:
        return x.clone()
    depth = int(40 + 8 * math.sqrt(float(x.max())))
    x2 = x * x
    r = torch.full_like(x, 2 * (nu + depth))
    for k in range(depth - 1, 0, -1):
        r = 2 * (nu + k) + x2 / r
    return x / r


class _Ratio(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, nu: float) -> torch.Tensor:
        a = _ratio(nu, x.double()).to(x.dtype)
        ctx.save_for_backward(x, a)
        ctx.nu = nu
        return a

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, a = ctx.saved_tensors
        return grad * (1 - a * a - (2 * ctx.nu + 1) * a / x), None


def bessel_ratio(nu: float, x: torch.Tensor) -> torch.Tensor:
    """``A_nu(x) = I_{nu+1}(x) / I_nu(x)`` for ``x > 0``, differentiable in ``x``."""
    return _Ratio.apply(x, _check_order(nu))


def _log_iv(nu: float, x: torch.Tensor) -> torch.Tensor:
    if nu == int(nu):
        out = torch.log(torch.special.i0e(x)) + x
        start = 0.0
    else:  # log sinh x = x + log(-expm1(-2x)) - log 2
        out = 0.5 * math.log(2 / math.pi) - 0.5 * torch.log(x) + x \
            + torch.log(-torch.expm1(-2 * x)) - math.log(2)
        start = 0.5
    orders = int(nu - start)  # A_start .. A_{nu-1}
    if orders == 0:
        return out
    ratios = torch.empty((orders,) + x.shape, dtype=x.dtype, device=x.device)
    ratios[-1] = _ratio(nu - 1, x)
    for i in range(orders - 1, 0, -1):  # A_{k-1} = x / (2k + x A_k), k = start + i
        torch.div(x, torch.addcmul(torch.full_like(x, 2 * (start + i)), x, ratios[i]),
                  out=ratios[i - 1])
    return out + ratios.log_().sum(0)


class _LogIv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, nu: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.nu = nu
        return _log_iv(nu, x.double()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * (bessel_ratio(ctx.nu, x) + ctx.nu / x), None


def log_iv(nu: float, x: torch.Tensor) -> torch.Tensor:
    """``log I_nu(x)`` for ``x > 0``, differentiable in ``x``."""
    return _LogIv.apply(x, _check_order(nu))
