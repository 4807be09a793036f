"""Test-wide settings: one intra-op thread; the runtime bound to the catalogue.

The tests use small lattices, where torch's thread pool costs more than it gains (and on a
loaded 2-core machine, far more); benchmarks/ measure multi-threaded throughput instead. Tests
that call runtime pieces directly (a sampler, a learner) find their implementations in the
catalogue, as a program run by the API does.
"""

import torch

from physml_lang.api import bind_runtime

torch.set_num_threads(1)
bind_runtime()
