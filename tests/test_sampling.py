"""The data order does not depend on the number of processes, and an epoch resumed halfway goes on as before."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lesam.data.sampling import BatchSeeded, EpochSampler


class RandomAugment(Dataset):
    """Item i is (i, a random number): the random number stands for an augmentation's draw."""

    def __len__(self) -> int:
        return 48

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        return index, torch.rand(())


def batches(world: int, rank: int, epoch: int, skip: int = 0, workers: int = 0, global_batch: int = 8) -> list:
    dataset = RandomAugment()
    size = global_batch // world
    sampler = EpochSampler(dataset, world, rank, seed=7, batch_size=size)
    sampler.set_epoch(epoch, skip_batches=skip)
    seeded = torch.Generator().manual_seed(100 + epoch)  # the trainer seeds it per epoch
    loader = DataLoader(BatchSeeded(dataset), batch_size=size, sampler=sampler, num_workers=workers, generator=seeded)
    return [(indices.tolist(), draws) for indices, draws in loader]


def test_the_global_batches_are_the_same_for_one_or_two_processes():
    for epoch in (0, 1):
        alone = [sorted(indices) for indices, _ in batches(1, 0, epoch)]
        pairs = zip(batches(2, 0, epoch), batches(2, 1, epoch), strict=True)
        together = [sorted(a + b) for (a, _), (b, _) in pairs]
        assert together == alone
    assert batches(1, 0, 0)[0][0] != batches(1, 0, 1)[0][0]  # each epoch its own order


def test_a_resumed_epoch_skips_the_batches_already_trained():
    whole = batches(1, 0, epoch=3)
    assert [indices for indices, _ in batches(1, 0, epoch=3, skip=2)] == [indices for indices, _ in whole[2:]]


def test_workers_augment_a_resumed_epoch_as_the_uninterrupted_one():
    whole = batches(1, 0, epoch=2, workers=2)
    resumed = batches(1, 0, epoch=2, skip=3, workers=2)  # different batches now go to each worker
    for (indices_a, draws_a), (indices_b, draws_b) in zip(whole[3:], resumed, strict=True):
        assert indices_a == indices_b and torch.equal(draws_a, draws_b)
    draws = torch.cat([d for _, d in whole])
    assert len(set(draws.tolist())) == len(draws)  # and every item still gets its own draw


@pytest.mark.parametrize(
    "images,world,batch,left_out",
    [
        (10, 1, 4, 0),  # a last batch of 2: kept, the order as ever
        (9, 1, 4, 1),  # a last batch of 1: left out
        (8, 1, 4, 0),
        (5, 1, 1, 0),  # batches of one are what was asked for
        (18, 2, 4, 1),  # 9 images per process: each leaves out its last one
        (20, 2, 4, 0),
    ],
)
def test_a_last_batch_of_one_image_is_left_out_and_any_other_kept(images, world, batch, left_out):
    for rank in range(world):
        sampler = EpochSampler(range(images), world, rank, seed=7, batch_size=batch)
        plain = DistributedSampler(range(images), world, rank, shuffle=True, seed=7, drop_last=True)
        sampler.set_epoch(2)
        plain.set_epoch(2)
        every = list(plain)
        assert list(sampler) == every[: len(every) - left_out] and len(sampler) == len(every) - left_out
