"""Networks: gated MLP units, conv encoder/decoder shapes."""

import pytest
import torch

from reparam.vae.conv import ConvDecoder, ConvEncoder
from reparam.vae.networks import Gated, mlp


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
