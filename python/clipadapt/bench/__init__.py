"""Benchmarks of the clipadapt primitives against common baselines (``clipadapt bench``).

:mod:`clipadapt.bench.data` makes CLIP-like synthetic embeddings, :mod:`clipadapt.bench.knn`
times k-NN graph construction and checks its recall against a float64 oracle.
"""
