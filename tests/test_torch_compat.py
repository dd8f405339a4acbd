"""Each private torch API's public fallback, forced on, gives the same results."""

import sys

import pytest
import torch
from torch.distributions import constraints
from torch.optim.optimizer import register_optimizer_step_pre_hook

from reparam import _torch_compat as compat
from reparam.vae.optim import AdamStep, adam


@pytest.fixture
def no_aten(monkeypatch):
    monkeypatch.setattr(compat, "_TANH_BACKWARD", None)
    monkeypatch.setattr(compat, "_THRESHOLD_BACKWARD", None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_fallbacks_match_aten(dtype, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    grad = torch.randn(1000, generator=gen, dtype=dtype)
    y = torch.randn(1000, generator=gen, dtype=dtype).tanh()
    grad[:3] = torch.tensor([float("inf"), float("nan"), -float("inf")], dtype=dtype)
    relu_y = torch.cat([torch.zeros(5, dtype=dtype), torch.randn(995, generator=gen, dtype=dtype)])
    relu_y = relu_y.clamp_min(0)
    fast_tanh, fast_relu = compat.tanh_backward(grad, y), compat.threshold_backward(grad, relu_y)
    monkeypatch.setattr(compat, "_TANH_BACKWARD", None)
    monkeypatch.setattr(compat, "_THRESHOLD_BACKWARD", None)
    slow = compat.tanh_backward(grad, y)  # 1 - y^2 rounds differently: within 2 ulp of grad
    assert torch.equal(slow[:3].nan_to_num(7.0), fast_tanh[:3].nan_to_num(7.0))  # inf, nan
    err = (slow[3:] - fast_tanh[3:]).abs()
    assert (err <= 2 * torch.finfo(dtype).eps * grad[3:].abs()).all()
    assert torch.equal(compat.threshold_backward(grad, relu_y).nan_to_num(7.0),
                       fast_relu.nan_to_num(7.0))  # ReLU's backward: zeros where y <= 0, exactly
    torch.testing.assert_close(compat.tanh_backward(grad[3:], y[3:]),
                               grad[3:] * (1 - torch.tanh(torch.atanh(y[3:])) ** 2))


def test_network_tanh_gradient_through_the_fallback(no_aten):
    from reparam.vae.networks import tanh

    x = torch.linspace(-5, 5, 101, dtype=torch.float64, requires_grad=True)
    g, = torch.autograd.grad(tanh(x).sum(), x)
    torch.testing.assert_close(g, 1 - torch.tanh(x.detach()) ** 2, rtol=0, atol=1e-15)
    assert torch.autograd.gradgradcheck(tanh, (x[:6].detach().clone().requires_grad_(),))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fused_step_through_the_fallbacks(activation, monkeypatch):
    from reparam.noise import MonteCarlo
    from reparam.vae import VAE
    from reparam.vae.fused import fused_step

    torch.manual_seed(0)
    model = VAE(20, latent_dim=4, hidden=(16, 12), activation=activation).double()
    x = (torch.rand(7, 20, dtype=torch.float64) < 0.3).double()

    def grads():
        model.zero_grad(set_to_none=True)
        fused_step(model, num_samples=1)(x, 1.0, MonteCarlo(torch.Generator().manual_seed(1)))
        return [p.grad.clone() for p in model.parameters()]

    fast = grads()
    monkeypatch.setattr(compat, "_TANH_BACKWARD", None)
    monkeypatch.setattr(compat, "_THRESHOLD_BACKWARD", None)
    for a, b in zip(grads(), fast, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _adam_pair():
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(s, generator=gen) for s in [(7, 5), (5,), (3,)]]
    pairs = []
    for _ in range(2):
        params = [torch.nn.Parameter(t.clone()) for t in base]
        pairs.append((params, adam(params, lr=1e-2)))
    return pairs


def _run(params, step, n=5):
    for i in range(n):
        gen = torch.Generator().manual_seed(i)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        step()


@pytest.mark.parametrize("check", ["_FUSED_ADAM", "_FOREACH_ADD", "hooks"])
def test_adam_step_falls_back_to_optimizer_step(check, monkeypatch):
    """Without the fused kernel (or without the hook dicts to check) AdamStep calls
    optimizer.step() every step, and the result is bit-identical to the fast path's."""
    (fast_p, fast_opt), (slow_p, slow_opt) = _adam_pair()
    fast_calls = []
    fast_opt.step = lambda *a, _s=fast_opt.step: fast_calls.append(1) or _s(*a)
    _run(fast_p, AdamStep(fast_opt))
    assert len(fast_calls) == 1  # only the first step (which creates the state)
    if check == "hooks":
        monkeypatch.setattr(compat, "_HOOK_DICTS", ("_no_such_hooks",))
        assert compat.optimizer_has_hooks(slow_opt)
    else:
        monkeypatch.setattr(compat, check, None)
        assert not compat.has_fused_adam()
        with pytest.raises(RuntimeError, match="optimizer.step"):
            compat.fused_adam_([], [], [], [], [], lr=1.0, beta1=0.9, beta2=0.9,
                               weight_decay=0.0, eps=1e-8)
    calls = []
    slow_opt.step = lambda *a, _s=slow_opt.step: calls.append(1) or _s(*a)
    _run(slow_p, AdamStep(slow_opt))
    assert len(calls) == 5
    for a, b in zip(fast_p, slow_p, strict=True):
        assert torch.equal(a, b)


def test_adam_without_fused_kernel_is_plain_adam(monkeypatch):
    monkeypatch.setattr(compat, "_FUSED_ADAM", None)
    params = [torch.nn.Parameter(torch.ones(3))]
    opt = adam(params, lr=0.1)
    assert not opt.param_groups[0]["fused"]
    ref_params = [torch.nn.Parameter(torch.ones(3))]
    ref = torch.optim.Adam(ref_params, lr=0.1, fused=True)
    for _ in range(3):
        params[0].grad = ref_params[0].grad = torch.full((3,), 0.5)
        AdamStep(opt)()
        ref.step()
    torch.testing.assert_close(params[0], ref_params[0], rtol=1e-6, atol=1e-7)


def test_hooks_seen_through_the_compat_check():
    params = [torch.nn.Parameter(torch.ones(3))]
    opt = adam(params, lr=0.1)
    assert not compat.optimizer_has_hooks(opt)
    handle = opt.register_step_post_hook(lambda *a: None)
    assert compat.optimizer_has_hooks(opt)
    handle.remove()
    handle = register_optimizer_step_pre_hook(lambda *a: None)
    try:
        assert compat.optimizer_has_hooks(opt)
    finally:
        handle.remove()


def test_bf16_probe_fallback_agrees(monkeypatch):
    native = compat.bf16_supported()
    with monkeypatch.context() as patch:  # the op is looked up when asked
        patch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
        assert compat.bf16_supported() is torch.backends.mkldnn.is_available()
    monkeypatch.setattr(compat, "_BF16_PROBE", lambda: None)
    if sys.platform.startswith("linux") and torch.backends.mkldnn.is_available():
        assert compat.bf16_supported() == native
    monkeypatch.setattr(compat, "_cpuinfo_flags", lambda: {"avx512_bf16"})
    assert compat.bf16_supported() is (sys.platform.startswith("linux")
                                       and torch.backends.mkldnn.is_available())
    monkeypatch.setattr(compat, "_cpuinfo_flags", lambda: {"avx2"})
    assert compat.bf16_supported() is False


def test_greater_than_fallback_checks_the_same(monkeypatch):
    low = torch.tensor([0.0, -1.0, 2.0])
    value = torch.tensor([[0.0, -0.5, 3.0], [1e-30, -1.0, 1.0]])
    assert compat.GreaterThan is constraints.greater_than
    fallback = compat._GreaterThanFallback(low)
    assert torch.equal(fallback.check(value), constraints.greater_than(low).check(value))
    assert not fallback.is_discrete and fallback.event_dim == 0
    monkeypatch.delattr(constraints, "greater_than")
    assert compat._greater_than_base() is compat._GreaterThanFallback

    class Above(compat._greater_than_base()):  # the shape of distributions._builders.Above
        def __init__(self, name, lower_bound):
            super().__init__(lower_bound)
            self.name = name

    above = Above("low", low)
    assert torch.equal(above.check(value), value > low) and above.lower_bound is low
