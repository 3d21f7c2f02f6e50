"""Which samples each process trains on, in which order, and from where an interrupted epoch goes on."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, get_worker_info


def mixed_seed(*values: int) -> int:
    """One well-spread 64-bit seed from several integers (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(values)).generate_state(1, np.uint64)[0])


def trained_samples(n: int, batch_size: int) -> int:
    """How many of an epoch's n samples are trained on in batches of `batch_size`: all, but for a last batch of
    one sample, which is left out (BatchNorm cannot train on one sample); any other last batch is kept."""
    return n - 1 if batch_size > 1 and n % batch_size == 1 else n


class EpochSampler(DistributedSampler):
    """DistributedSampler that shuffles epoch e with seed `seed + e` and can start after a number of batches.

    Process r takes every world-th index of the epoch's permutation (the tail that does not split
    evenly is dropped). With the per-process batch b = B / world, the k-th batches of all processes
    together are the k-th batch of one process with batch B: the order does not depend on the
    number of processes. A process's last batch of one sample is left out (`trained_samples`).
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, batch_size: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.start = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Shuffle for `epoch`, leaving out the first `skip_batches` batches (trained before an interruption)."""
        super().set_epoch(epoch)
        self.start = skip_batches * self.batch_size

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, trained_samples(self.num_samples, self.batch_size))

    def __len__(self) -> int:
        return max(trained_samples(self.num_samples, self.batch_size) - self.start, 0)


class BatchSeeded(Dataset):
    """In a loader worker, seeds the random generators from the batch before making it.

    A worker's augmentation then depends on the epoch (the loader's base seed) and the batch (its
    first index) alone, not on which worker made it or what that worker made before, so an epoch
    resumed halfway augments its remaining batches exactly as the uninterrupted epoch did. In the
    main process (workers=0) nothing changes: the checkpoint's RNG state covers that case.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]

    def __getitems__(self, indices: Sequence[int]) -> list:
        worker = get_worker_info()
        if worker is not None:
            seed = mixed_seed(worker.seed - worker.id, indices[0])
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
        return [self.dataset[i] for i in indices]
