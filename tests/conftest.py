"""Test-wide settings: one intra-op thread.

The tests use small lattices, where torch's thread pool costs more than it gains (and on a
loaded 2-core machine, far more); benchmarks/ measure multi-threaded throughput instead.
"""

import torch

torch.set_num_threads(1)
