"""Networks: gated MLP units, conv encoder/decoder shapes."""

import pytest
import torch

from reparam.vae.conv import ConvDecoder, ConvEncoder
from reparam.vae.networks import Gated, Tanh, mlp, tanh


def test_tanh_matches_torch_in_value_and_gradients():
    x = torch.linspace(-40, 40, 200001)
    torch.testing.assert_close(tanh(x), torch.tanh(x), atol=2.5e-7, rtol=0)
    x64 = torch.cat([torch.linspace(-30, 30, 1001), torch.tensor([0.0, 1e-300, -1e-8, 710.0])])
    x64 = x64.double().requires_grad_(True)
    torch.testing.assert_close(tanh(x64), torch.tanh(x64), atol=1e-15, rtol=0)
    g_ours, = torch.autograd.grad(tanh(x64).sum(), x64)
    g_ref, = torch.autograd.grad(torch.tanh(x64).sum(), x64)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-15, rtol=0)
    small = torch.randn(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tanh, (small,))
    assert torch.autograd.gradgradcheck(tanh, (small,))
    assert torch.equal(tanh(torch.tensor([-1e4, 1e4])), torch.tensor([-1.0, 1.0]))
    assert type(mlp(3, [4], 2, "tanh")[1]) is Tanh


def test_gated_unit_is_linear_times_sigmoid_gate():
    g = Gated(4, 3)
    x = torch.randn(5, 4)
    W, b = g.linear.weight, g.linear.bias
    ref = (x @ W[:3].T + b[:3]) * torch.sigmoid(x @ W[3:].T + b[3:])
    torch.testing.assert_close(g(x), ref)


def test_mlp_plain_and_gated():
    plain = mlp(6, [5, 4], 2, "relu")
    assert [type(m).__name__ for m in plain] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    gated = mlp(6, [5, 4], 2, gated=True)
    assert [type(m).__name__ for m in gated] == ["Gated", "Gated", "Linear"]
    assert gated(torch.randn(3, 7, 6)).shape == (3, 7, 2)  # leading sample dims pass through
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        mlp(6, [5], 2, "swishy")


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_conv_encoder_and_decoder_shapes(shape):
    C, H, W = shape
    enc = ConvEncoder(shape, 10, hidden=16, channels=(4, 8))
    dec = ConvDecoder(5, shape, params_per_dim=2, hidden=16, channels=(4, 8))
    x = torch.rand(2, C * H * W)
    assert enc(x).shape == (2, 10)
    assert dec(torch.randn(3, 2, 5)).shape == (3, 2, 2 * C * H * W)


def test_conv_decoder_channel_blocks_match_the_likelihood_layout():
    """The first C channels of the output are the first block of ``chunk(2, -1)``."""
    dec = ConvDecoder(2, (3, 4, 4), params_per_dim=2, hidden=8, channels=(4, 4))
    z = torch.randn(1, 2)
    maps = dec.net[:-1](z)  # (1, 6, 4, 4) before flattening
    first, _ = dec(z).chunk(2, -1)
    torch.testing.assert_close(first, maps[:, :3].reshape(1, -1))


def test_conv_refuses_sizes_not_divisible_by_4():
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvEncoder((1, 30, 30), 4)
