"""Benchmarks: aitop against its peers (see bench/README.md); each file runs as a script."""
