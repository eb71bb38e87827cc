"""Portal's benchmarks. `make bench` runs `bench/run.py`; each benchmark registers itself in `bench.registry`."""
