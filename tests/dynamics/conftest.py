"""Run the dynamics tests single-threaded: their tensors are small, and intra-op threads on a
shared, oversubscribed CPU made small autograd steps ~100x slower (measured: 4 s vs 0.04 s per
HNN training step). Restored after each test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
