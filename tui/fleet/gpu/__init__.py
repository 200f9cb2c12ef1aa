"""GPUs: the NVML boundary (`nvml`, the only importer of `pynvml`), readings (`sampler`),
which container holds which GPU (`attribution`), and the plain snapshots and pure functions on
them that widgets may import (`types`)."""
