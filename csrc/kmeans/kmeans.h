// k-means building blocks: grouping rows by cluster, the centroid update (a segmented
// reduction over the grouped rows, with empty-cluster splitting and spherical
// renormalisation), k-means++ seeding, and exact search inside an IVF index's probed lists.
// Assignment is not here: it is the k = 1 case of the fused k-NN kernel (knn/knn.h).
#pragma once
#include <cstdint>

#include "core/array.h"
#include "knn/knn.h"

namespace clipadapt::kmeans {

// A stable counting sort of rows by cluster id: order[offsets[c] .. offsets[c + 1]) are the
// rows of cluster c in increasing row order.
struct GroupProblem {
  Matrix assignments;  // int64 [n], entries in [0, clusters)
  int64_t clusters = 0;
  Matrix order;        // out: int64 [n]
  Matrix offsets;      // out: int64 [clusters + 1]
  void* stream = nullptr;
};

void group_by_cluster_cpu(const GroupProblem& problem);
void group_by_cluster_cuda(const GroupProblem& problem);

// centroids[c] = mean of the rows of cluster c (float32 accumulation in row order, so the
// result is bitwise reproducible). Empty clusters are then re-seeded, in increasing id order,
// by splitting the currently largest cluster (lowest id on ties): both halves get its mean
// with a symmetric (1 +- 1/1024) perturbation of alternate coordinates, and half its count.
// With `spherical`, every centroid is finally scaled to unit norm.
struct UpdateProblem {
  Matrix x;            // [n, d] float32 / float16 / bfloat16
  Matrix order;        // int64 [n], from group_by_cluster
  Matrix offsets;      // int64 [clusters + 1]
  bool spherical = true;
  Matrix centroids;    // out: float32 [clusters, d]
  Matrix counts;       // out: int64 [clusters], after splitting
  void* stream = nullptr;
};

// Returns the number of clusters that were empty and got split.
int64_t update_centroids_cpu(const UpdateProblem& problem);
int64_t update_centroids_cuda(const UpdateProblem& problem);

// The end of a centroid update from means already computed (the update above, or partial sums
// combined across processes): clusters of count 0 re-seeded by splitting as described there,
// then, with `spherical`, every centroid scaled to unit norm.
struct FinishProblem {
  Matrix centroids;    // in/out: float32 [clusters, d], the means (any values where the count is 0)
  Matrix counts;       // in/out: int64 [clusters], after splitting
  bool spherical = true;
  void* stream = nullptr;
};

// Returns the number of clusters that were empty and got split.
int64_t finish_centroids_cpu(const FinishProblem& problem);
int64_t finish_centroids_cuda(const FinishProblem& problem);

// k-means++ (D^2) seeding: the first row uniformly, each next one with probability
// proportional to its squared distance to the nearest chosen row (2 - 2 cos for the cosine
// and inner-product metrics, on normalised rows). Deterministic given the seed.
struct SeedingProblem {
  Matrix x;             // [n, d]
  knn::Metric metric = knn::Metric::Cosine;
  uint64_t seed = 0;
  Matrix chosen;        // out: int64 [clusters] row ids
  void* stream = nullptr;
};

void kmeans_plus_plus_cpu(const SeedingProblem& problem);
void kmeans_plus_plus_cuda(const SeedingProblem& problem);

// Exact top-k of each query among the vectors of its probed inverted lists.
struct IvfSearchProblem {
  Matrix queries;   // [nq, d]
  Matrix vectors;   // [N, d], grouped by list, same dtype as queries
  Matrix ids;       // int64 [N] user ids of the grouped vectors
  Matrix row_norms; // float64 [N] canonical squared norms of the vectors (knn::squared_norms_cpu)
  Matrix offsets;   // int64 [lists + 1]
  Matrix probes;    // int64 [nq, nprobe] list ids per query (-1 and out-of-range entries are skipped)
  int64_t k = 1;
  knn::Metric metric = knn::Metric::Cosine;
  Matrix scores;    // out: float32 [nq, k]; empty slots -inf (+inf for l2)
  Matrix indices;   // out: int64 [nq, k]; empty slots -1
  void* stream = nullptr;
};

void ivf_search_cpu(const IvfSearchProblem& problem);
void ivf_search_cuda(const IvfSearchProblem& problem);

void validate(const GroupProblem& problem);
void validate(const UpdateProblem& problem);
void validate(const FinishProblem& problem);
void validate(const SeedingProblem& problem);
void validate(const IvfSearchProblem& problem);

}  // namespace clipadapt::kmeans
