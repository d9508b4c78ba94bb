"""clipadapt beyond one process: sharded k-NN, k-means and IVF on torch.distributed.

Every rank of a process group calls the same function with its own shard of the rows;
nothing gathers a whole dataset on one rank, and results equal the single-process functions
on the shards concatenated in rank order.
"""
from clipadapt.distributed._comm import CollectiveError, RankFailed, Traffic, traffic
from clipadapt.distributed.ivf import ShardedIVFIndex, load_as_one
from clipadapt.distributed.clustering import kmeans, paired_kmeans
from clipadapt.distributed.neighbors import KnnGraphShard, knn, knn_graph
from clipadapt.distributed.rows import take_rows

__all__ = ["CollectiveError", "KnnGraphShard", "RankFailed", "ShardedIVFIndex", "Traffic", "kmeans", "knn", "knn_graph",
           "load_as_one", "paired_kmeans", "take_rows", "traffic"]
