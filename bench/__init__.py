"""Benchmarks of the execution stores and the runtime (not tests):
``python -m bench {ops,e2e,scale,all} [--quick | --full]``.

Every comparison is a ratio measured side by side in one run, because the machines
are shared and noisy: absolute numbers move, ratios much less. See ``bench/README.md``
and ``docs/benchmarks.md``.
"""
