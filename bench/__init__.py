"""Benchmarks of the execution stores (not tests): ``python -m bench ops``.

Every comparison is a ratio measured side by side in one run, because the machines
are shared and noisy: absolute numbers move, ratios much less. See ``bench/README.md``.
"""
