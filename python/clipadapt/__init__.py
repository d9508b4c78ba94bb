"""clipadapt: fast k-NN graphs, label propagation and paired k-means for adapting CLIP.

Arrays in, arrays out: numpy, torch and cupy arrays (or any DLPack producer) are read in place
and results come back in the same library and on the same device. Every score is exact (float64
from the two rows, rounded once to float32) and ties go to the smaller index. The documentation's
contract page (``docs/contract.md``) states these rules, threads, CUDA streams, errors and the
memory of each primitive; its tutorials (``docs/tutorials/``) show them at work.
"""
from clipadapt.clustering import KMeansResult, assign, kmeans, paired_kmeans
from clipadapt.device import cuda_available, device_summary, get_num_threads, set_num_threads
from clipadapt.ivf import IVFIndex
from clipadapt.linalg import exact_matmul
from clipadapt.neighbors import KnnGraph, knn, knn_graph
from clipadapt.propagation import (ConjugateGradientResult, CsrMatrix, LabelPropagationResult, affinity,
                                   conjugate_gradient, label_propagation, spmm)

__all__ = [
    "ConjugateGradientResult",
    "CsrMatrix",
    "IVFIndex",
    "KMeansResult",
    "KnnGraph",
    "LabelPropagationResult",
    "affinity",
    "assign",
    "conjugate_gradient",
    "exact_matmul",
    "label_propagation",
    "paired_kmeans",
    "spmm",
    "cuda_available",
    "device_summary",
    "get_num_threads",
    "kmeans",
    "knn",
    "knn_graph",
    "set_num_threads",
]
__version__ = "0.1.0"
