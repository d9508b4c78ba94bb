#include <string>

#include "core/errors.h"
#include "kmeans/kmeans.h"

namespace clipadapt::kmeans {
namespace {

bool is_feature_dtype(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float16 || dtype == DType::BFloat16;
}

void require_features(const Matrix& m, const char* name) {
  if (!is_feature_dtype(m.dtype)) {
    throw UnsupportedType(std::string(name) + ": dtype " + dtype_name(m.dtype) +
                          " is not supported; use float32, float16 or bfloat16");
  }
}

void require_int64(const Matrix& m, const char* name, int64_t rows, int64_t cols) {
  require(m.dtype == DType::Int64 && m.rows == rows && m.cols == cols,
          std::string(name) + ": must be int64 [" + std::to_string(rows) + (cols == 1 ? "" : ", " + std::to_string(cols)) +
              "]");
}

}  // namespace

void validate(const GroupProblem& p) {
  require(p.clusters >= 1, "n_clusters: must be >= 1");
  require_int64(p.assignments, "assignments", p.assignments.rows, 1);
  require_int64(p.order, "order (output)", p.assignments.rows, 1);
  require_int64(p.offsets, "offsets (output)", p.clusters + 1, 1);
}

void validate(const FinishProblem& p) {
  const int64_t clusters = p.centroids.rows;
  require(clusters >= 1 && p.centroids.dtype == DType::Float32, "centroids: must be float32 [n_clusters >= 1, d]");
  require_int64(p.counts, "counts", clusters, 1);
}

void validate(const UpdateProblem& p) {
  require_features(p.x, "x");
  const int64_t clusters = p.offsets.rows - 1;
  require(clusters >= 1, "offsets: must hold clusters + 1 entries");
  require_int64(p.order, "order", p.x.rows, 1);
  require(p.centroids.dtype == DType::Float32 && p.centroids.rows == clusters && p.centroids.cols == p.x.cols,
          "centroids (output): must be float32 [clusters, d]");
  require_int64(p.counts, "counts (output)", clusters, 1);
}

void validate(const SeedingProblem& p) {
  require_features(p.x, "x");
  require(p.chosen.dtype == DType::Int64 && p.chosen.cols == 1, "chosen (output): must be int64 [clusters]");
  require(p.chosen.rows >= 1 && p.chosen.rows <= p.x.rows,
          "n_clusters: must lie in [1, n] (got " + std::to_string(p.chosen.rows) + " for n = " +
              std::to_string(p.x.rows) + ")");
}

void validate(const IvfSearchProblem& p) {
  require_features(p.queries, "queries");
  require(p.vectors.dtype == p.queries.dtype, "queries: dtype must equal the index's vector dtype");
  require(p.vectors.cols == p.queries.cols, "queries: dimension differs from the index");
  require_int64(p.ids, "ids", p.vectors.rows, 1);
  require(p.row_norms.dtype == DType::Float64 && p.row_norms.rows == p.vectors.rows && p.row_norms.cols == 1,
          "row_norms: must be float64 [N], the squared norms of the index's vectors");
  require(p.offsets.dtype == DType::Int64 && p.offsets.rows >= 2, "offsets: must be int64 [lists + 1]");
  require(p.probes.dtype == DType::Int64 && p.probes.rows == p.queries.rows, "probes: must be int64 [nq, nprobe]");
  require(p.k >= 1, "k: must be >= 1");
  require(p.scores.dtype == DType::Float32 && p.scores.rows == p.queries.rows && p.scores.cols == p.k,
          "scores (output): must be float32 [nq, k]");
  require_int64(p.indices, "indices (output)", p.queries.rows, p.k);
}

}  // namespace clipadapt::kmeans
