"""The runtime: devices, RNG, samplers, training loops, observables, tasks and outputs."""
