// Exact top-k on the CPU from the candidates of a fast pass (exact_score.h): the fast pass
// keeps, per query, a list of `width` candidates by its float32 key; every candidate whose
// fast key lies within twice the error bound of the k-th best is re-scored exactly, and the
// top k by (exact key, smaller id) are reported. When the list is too short to hold every
// candidate of that band, the query is searched again with a wider list.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/array.h"
#include "knn/knn.h"
#include "knn/topk_heap.h"

namespace clipadapt::knn {

// Canonical squared norm of every row (float64), in parallel.
std::vector<double> canonical_squared_norms(const Matrix& m);

// fast_term (exact_score.h) of each canonical squared norm.
std::vector<float> fast_terms(const std::vector<double>& squared_norms, Metric metric);

// Canonical dot product of row i of a and row j of b (same dtype and number of columns).
double canonical_row_dot(const Matrix& a, int64_t i, const Matrix& b, int64_t j);

// The norm bounds key_error_bound needs, over the rows a fast pass scanned.
// Kept as extreme squared norms (a compare per row; the square roots are taken once, when the
// bound is formed: sqrt and 1 / sqrt are monotone and correctly rounded, so the bounds are
// those of the norms themselves).
struct RowNormBounds {
  double max_squared = 0.0;
  double min_positive_squared = INFINITY;
  void include(double squared_norm);
  void include(const RowNormBounds& other);
  double max_norm() const { return std::sqrt(max_squared); }
  double max_inverse_norm() const {  // over rows of nonzero norm
    return min_positive_squared < INFINITY ? 1.0 / std::sqrt(min_positive_squared) : 0.0;
  }
};

// One query's re-scoring: where its rows are and how to report them.
struct RescoreTarget {
  const Matrix* queries = nullptr;
  int64_t query_row = 0;
  double query_squared_norm = 0.0;
  const Matrix* database = nullptr;
  const double* row_squared_norms = nullptr;  // per database row, or null: computed on demand
  const int64_t* ids = nullptr;               // reported id of each database row, or null: the row
  Metric metric = Metric::Cosine;
  int64_t k = 1;
  RowNormBounds bounds;
  double product_error = 0.0;  // relative error of the fast pass's products (0 for float32)
  bool exhaustive = false;     // the list holds every row the query could get
  bool flushes_subnormals = false;  // the fast pass flushed subnormals (avx512_tiles.h)
};

// Writes the exact top k of one query into scores / indices [k] from its fast list (best
// first, `width` entries, index = database row). Returns false, writing nothing, when the
// list may miss one of them. Slots no candidate fills report (-inf or +inf for l2, -1).
bool rescore_query(const RescoreTarget& target, const Candidate* list, int64_t width, float* scores,
                   int64_t* indices, std::vector<Candidate>& scratch);

// The fast pass's list width: k plus a margin for the band, then wider on each retry.
int64_t initial_width(int64_t k, int64_t available);
int64_t wider_width(int64_t width, int64_t available);

// Copies rows `rows` of m into `storage` and returns them as a matrix of the same dtype.
Matrix gather_rows(const Matrix& m, const std::vector<int64_t>& rows, std::vector<unsigned char>& storage);

}  // namespace clipadapt::knn
