"""gpu-agent: NVML readings of this host's GPUs, with GPU processes mapped to containers."""
