import copy

import pytest
import torch

from reparam.vae.optim import AdamStep, adam


def _pair(dtype=torch.float64, weight_decay=0.0):
    """Two identical parameter sets, each with its own fused Adam (two groups)."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (3, 7), (3,)]
    base = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    out = []
    for _ in range(2):
        params = [torch.nn.Parameter(t.clone()) for t in base]
        opt = adam(params[:2], lr=1e-2)
        opt.add_param_group({"params": params[2:], "lr": 3e-3, "weight_decay": weight_decay})
        out.append((params, opt))
    return out


def _set_grads(params, seed, skip=()):
    gen = torch.Generator().manual_seed(seed)
    for i, p in enumerate(params):
        g = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        p.grad = None if i in skip else g


def _assert_same(a, b):
    (pa, oa), (pb, ob) = a, b
    for x, y in zip(pa, pb):
        assert torch.equal(x, y)
    sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for key in sa[k]:
            assert torch.equal(sa[k][key], sb[k][key]), (k, key)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bit_identical_to_adam_step(dtype):
    ref, lean = _pair(dtype, weight_decay=0.1)
    step = AdamStep(lean[1])
    calls = []
    lean[1].step = lambda *a, _step=lean[1].step: calls.append(1) or _step(*a)
    for i in range(6):
        if i == 3:  # a learning-rate schedule changes lr between steps
            for opt in (ref[1], lean[1]):
                opt.param_groups[0]["lr"] = 5e-3
        _set_grads(ref[0], i)
        _set_grads(lean[0], i)
        ref[1].step()
        step()
    _assert_same(ref, lean)
    assert len(calls) == 1  # only the first step (which creates the state) went through Adam.step


def test_missing_grad_falls_back_to_adam_step():
    ref, lean = _pair()
    step = AdamStep(lean[1])
    for i, skip in enumerate([(), (), (1,), ()]):
        _set_grads(ref[0], i, skip)
        _set_grads(lean[0], i, skip)
        ref[1].step()
        step()
    _assert_same(ref, lean)


def test_follows_a_loaded_state():
    ref, lean = _pair()
    step = AdamStep(lean[1])
    for i in range(3):
        _set_grads(ref[0], i)
        _set_grads(lean[0], i)
        ref[1].step()
        step()
    # a resumed run: the optimizer's state is replaced by load_state_dict
    lean[1].load_state_dict(copy.deepcopy(ref[1].state_dict()))
    assert step._state is not lean[1].state  # the cached lists belong to the old state
    for i in range(3, 6):
        _set_grads(ref[0], i)
        _set_grads(lean[0], i)
        ref[1].step()
        step()
    _assert_same(ref, lean)


def test_hooks_and_other_optimizers_go_through_step():
    params = [torch.nn.Parameter(torch.ones(3))]
    opt = adam(params, lr=0.1)
    seen = []
    opt.register_step_pre_hook(lambda *a: seen.append(1))
    step = AdamStep(opt)
    for _ in range(3):
        params[0].grad = torch.ones(3)
        step()
    assert len(seen) == 3
    sgd = torch.optim.SGD(params, lr=0.5)
    params[0].grad = torch.ones(3)
    before = params[0].detach().clone()
    AdamStep(sgd)()
    assert torch.equal(params[0].detach(), before - 0.5)


def test_training_uses_it_and_matches_adam_step(monkeypatch):
    """The training loop's result does not depend on how the Adam step is called."""
    from reparam.vae import training

    kwargs = dict(epochs=2, latent_dim=2, hidden=[16], batch_size=64, tensorboard=False,
                  seed=3)
    lean = training.train(save=False, progress=False, **kwargs)
    monkeypatch.setattr(training, "AdamStep", lambda opt: opt.step)
    ref = training.train(save=False, progress=False, **kwargs)
    for (name, a), b in zip(lean.model.state_dict().items(), ref.model.state_dict().values()):
        assert torch.equal(a, b), name
