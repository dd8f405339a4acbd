"""One intra-op thread for these tests: on a shared, oversubscribed 2-core machine every
OpenMP-parallel op waits ~15 ms at its barrier (measured), which dominated the run time."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
