"""Benchmarks: each prints ratios against a baseline measured in the same run; run one as
``python -m benchmarks.NAME`` from the checkout (``--help`` lists its options)."""
