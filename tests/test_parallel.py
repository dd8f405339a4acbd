"""reparam.parallel without a process group: parts, the sampler, sliced noise, reductions."""

import pytest
import torch

from reparam import parallel
from reparam.noise import Antithetic, MonteCarlo
from reparam.parallel import GlobalBatchSampler, Part, ShardedNoise, split, split_blocks


@pytest.mark.parametrize("total, world", [(10, 1), (10, 3), (7, 2), (2, 4), (0, 2), (100, 7)])
def test_split_is_contiguous_balanced_and_covers(total, world):
    parts = [split(total, r, world) for r in range(world)]
    assert parts[0].start == 0 and parts[-1].stop == total
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    assert max(p.size for p in parts) - min(p.size for p in parts) <= 1
    assert sum(p.fraction for p in parts) == pytest.approx(1.0 if total else 0.0)


def test_split_rejects_bad_ranks():
    with pytest.raises(ValueError, match="rank=2"):
        split(5, 2, 2)
    with pytest.raises(ValueError, match="block"):
        split_blocks(5, 0, 0, 1)


@pytest.mark.parametrize("total, block, world", [(299, 100, 2), (299, 100, 3), (50, 100, 2),
                                                 (1000, 7, 4)])
def test_split_blocks_cuts_only_at_block_boundaries(total, block, world):
    parts = [split_blocks(total, block, r, world) for r in range(world)]
    assert parts[0].start == 0 and parts[-1].stop == total
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    assert all(p.start % block == 0 or p.start == total for p in parts)


def _epoch(sampler, epoch):
    return [(b.indices, b.part) for b in sampler.batches(epoch)]


@pytest.mark.parametrize("n, batch, world", [(103, 10, 2), (103, 10, 3), (21, 4, 5), (40, 8, 2)])
def test_sampler_slices_the_world_size_1_batches_without_overlap(n, batch, world):
    one = GlobalBatchSampler(n, batch, seed=3, rank=0, world=1)
    ranks = [GlobalBatchSampler(n, batch, seed=3, rank=r, world=world) for r in range(world)]
    assert {len(s) for s in ranks} == {len(one)} == {-(-n // batch)}
    for epoch in (0, 1):
        per_rank = [_epoch(s, epoch) for s in ranks]
        for b, (whole, part) in enumerate(_epoch(one, epoch)):
            assert part == Part(0, len(whole), len(whole))
            slices = [per_rank[r][b] for r in range(world)]
            assert torch.equal(torch.cat([idx for idx, _ in slices]), whole)
            assert [p.start for _, p in slices] == sorted(p.start for _, p in slices)
        seen = torch.cat([idx for r in range(world) for idx, _ in per_rank[r]])
        assert torch.equal(seen.sort().values, torch.arange(n))  # covers, no overlap


def test_sampler_reshuffles_every_epoch_reproducibly():
    s = GlobalBatchSampler(50, 10, seed=0, rank=0, world=1)
    orders = [next(s.batches(e)).indices for e in range(3)]
    assert not torch.equal(s.permutation(0), s.permutation(1))
    assert torch.equal(s.permutation(2), GlobalBatchSampler(50, 10, seed=0, rank=0,
                                                            world=1).permutation(2))
    assert not torch.equal(s.permutation(0), GlobalBatchSampler(50, 10, seed=1, rank=0,
                                                                world=1).permutation(0))
    assert len({tuple(o.tolist()) for o in orders}) == 3
    s.set_epoch(2)
    assert torch.equal(torch.cat(list(s)), s.permutation(2))


def test_sampler_drop_last_resume_and_uneven_last_batch():
    s = GlobalBatchSampler(23, 10, seed=0, rank=1, world=4, drop_last=True)
    assert len(s) == 2 and all(b.part.total == 10 for b in s.batches(0))
    tail = list(GlobalBatchSampler(23, 10, seed=0, rank=3, world=4).batches(0, start=2))
    assert len(tail) == 1 and tail[0].part == Part(3, 3, 3) and len(tail[0].indices) == 0
    assert GlobalBatchSampler(5, 2, rank=0, world=1, shuffle=False).permutation(7).tolist() == [
        0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="batch_size"):
        GlobalBatchSampler(10, 0)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("shape, batch_dim", [((4, 7, 3), -2), ((7, 5), -2), ((7, 5), 0)])
def test_sliced_noise_concatenates_to_the_world_size_1_draw(world, shape, batch_dim):
    dim = batch_dim % len(shape)
    total = shape[dim]

    def draws(part):
        noise = ShardedNoise(11, 5, part, batch_dim=batch_dim)
        local = list(shape)
        local[dim] = part.size
        return [noise.normal(local, torch.float64, torch.device("cpu")),
                noise.uniform(local, torch.float32, torch.device("cpu")),
                noise.normal(local, torch.float32, torch.device("cpu"))]

    whole = draws(Part(0, total, total))
    parts = [draws(split(total, r, world)) for r in range(world)]
    for i, ref in enumerate(whole):
        assert torch.equal(torch.cat([p[i] for p in parts], dim=dim), ref)  # bit for bit
    mc = MonteCarlo(torch.Generator().manual_seed(parallel.seed_for(11, 5, 0)))
    assert torch.equal(whole[0], mc.normal(shape, torch.float64, torch.device("cpu")))
    assert 0 < float(whole[1].min()) and float(whole[1].max()) < 1


def test_sliced_noise_keys_and_errors():
    part = Part(2, 5, 9)
    a = ShardedNoise(0, 1, part).normal((2, 3, 4), torch.float32, torch.device("cpu"))
    b = ShardedNoise(0, 2, part).normal((2, 3, 4), torch.float32, torch.device("cpu"))
    c = ShardedNoise(0, 1, part, stream=1).normal((2, 3, 4), torch.float32, torch.device("cpu"))
    assert not torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="batch of 3"):
        ShardedNoise(0, 1, part).normal((2, 4, 4), torch.float32, torch.device("cpu"))
    anti = Antithetic(ShardedNoise(0, 1, part)).normal((4, 3, 2), torch.float32,
                                                       torch.device("cpu"))
    assert torch.equal(anti[:2], -anti[2:])


def test_reductions_without_a_group_are_local():
    assert not parallel.launched() or parallel.world_size() >= 1
    assert parallel.mean_metrics({"a": 2.0, "b": -1.0}, weight=3) == {"a": 2.0, "b": -1.0}
    rows = parallel.gather_rows(torch.ones(2, 3), 1, 4)
    assert rows.sum() == 6 and rows[0].sum() == 0 and rows[3].sum() == 0
    assert parallel.on_main(lambda x: x + 1, 1) == 2
    assert parallel.init("cpu") == torch.device("cpu") and parallel.rank() == 0
    parallel.destroy()
    with pytest.raises(ValueError, match="seed keys"):
        parallel.seed_for(-1)
