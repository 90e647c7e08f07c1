"""This machine: GPUs, CPU/RAM/disk, the environment doctor."""
