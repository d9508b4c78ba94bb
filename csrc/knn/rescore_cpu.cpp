#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel.h"
#include "core/simd.h"
#include "knn/exact_score.h"
#include "knn/rescore.h"
#include "knn/topk_rules.h"

namespace clipadapt::knn {
// Vector clones: the 32 lane sums of the canonical order are four AVX-512 (eight AVX2)
// registers of doubles; the order, and so the result, is the same in every clone.
CLIPADAPT_VECTOR_CLONES
double canonical_row_dot(const Matrix& a, int64_t i, const Matrix& b, int64_t j) {
  const int64_t d = a.cols;
  switch (a.dtype) {
    case DType::BFloat16:
      return canonical_dot(BFloat16Elements{a.as<const uint16_t>() + i * d},
                           BFloat16Elements{b.as<const uint16_t>() + j * d}, d);
    case DType::Float16:
      return canonical_dot(Float16Elements{a.as<const uint16_t>() + i * d},
                           Float16Elements{b.as<const uint16_t>() + j * d}, d);
    default:
      return canonical_dot(Float32Elements{a.as<const float>() + i * d}, Float32Elements{b.as<const float>() + j * d},
                           d);
  }
}

namespace {

void canonical_squared_norms_into(const Matrix& m, double* norms) {
  // A few rows (centroids, a query) are not worth waking the threads for.
  constexpr int64_t kParallelElements = int64_t(1) << 18;
#pragma omp parallel for schedule(static) num_threads(thread_count()) if (m.rows * m.cols >= kParallelElements)
  for (int64_t row = 0; row < m.rows; ++row) norms[row] = canonical_row_dot(m, row, m, row);
}

}  // namespace

std::vector<double> canonical_squared_norms(const Matrix& m) {
  std::vector<double> norms(m.rows);
  canonical_squared_norms_into(m, norms.data());
  return norms;
}

void squared_norms_cpu(const SquaredNormsProblem& p) {
  validate(p);
  canonical_squared_norms_into(p.x, p.out.as<double>());
}

std::vector<float> fast_terms(const std::vector<double>& squared_norms, Metric metric) {
  std::vector<float> terms(squared_norms.size());
  for (size_t row = 0; row < terms.size(); ++row) terms[row] = fast_term(squared_norms[row], metric);
  return terms;
}

void RowNormBounds::include(double squared_norm) {
  if (!usable_squared_norm(squared_norm)) return;  // never selected, so never compared
  max_squared = std::max(max_squared, squared_norm);
  if (squared_norm > 0.0) min_positive_squared = std::min(min_positive_squared, squared_norm);
}

void RowNormBounds::include(const RowNormBounds& other) {
  max_squared = std::max(max_squared, other.max_squared);
  min_positive_squared = std::min(min_positive_squared, other.min_positive_squared);
}

bool rescore_query(const RescoreTarget& t, const Candidate* list, int64_t width, float* scores, int64_t* indices,
                   std::vector<Candidate>& scratch) {
  const int64_t k = t.k;
  const bool full = list[width - 1].index != kEmptyIndex;
  double threshold = -INFINITY;  // fast keys below it cannot reach the exact top k
  if (list[k - 1].index != kEmptyIndex) {
    // Slack of 1e-6 relative: the bound (a double) must not lose to its own rounding.
    const double bound = key_error_bound(t.metric, t.queries->cols, std::sqrt(t.query_squared_norm),
                                         t.bounds.max_norm(), t.bounds.max_inverse_norm(), t.product_error,
                                         t.flushes_subnormals);
    threshold = double(list[k - 1].key) - 2.0 * bound * (1.0 + 1e-6);
  }
  if (full && !t.exhaustive && !(double(list[width - 1].key) < threshold)) return false;
  scratch.clear();
  for (int64_t j = 0; j < width && list[j].index != kEmptyIndex && double(list[j].key) >= threshold; ++j) {
    const int64_t row = list[j].index;
    const double row_norm = t.row_squared_norms ? t.row_squared_norms[row]
                                                : canonical_row_dot(*t.database, row, *t.database, row);
    const double dot = canonical_row_dot(*t.queries, t.query_row, *t.database, row);
    const float key = exact_key(dot, t.query_squared_norm, row_norm, t.metric);
    if (!std::isnan(key)) scratch.push_back(Candidate{key, t.ids ? t.ids[row] : row});
  }
  const int64_t kept = std::min<int64_t>(k, scratch.size());
  std::partial_sort(scratch.begin(), scratch.begin() + kept, scratch.end(), better);
  scratch.resize(k, Candidate{-INFINITY, kEmptyIndex});
  for (int64_t j = 0; j < k; ++j) {
    scores[j] = score_from_key(scratch[j].key, t.metric);
    indices[j] = reported_index(scratch[j].index);
  }
  return true;
}

// The band beyond the k-th holds about 0.01 more candidates at k = 1 and 0.1 at k = 10 on
// CLIP-like data (d = 512): one spare slot serves k = 1 (a retry for ~1% of queries costs less
// than a wider list for all), two plus k/32 serve larger k.
int64_t initial_width(int64_t k, int64_t available) {
  return std::min(available, k + 1 + (k > 1 ? 1 + k / 32 : 0));
}

int64_t wider_width(int64_t width, int64_t available) { return std::min(available, 4 * width); }

Matrix gather_rows(const Matrix& m, const std::vector<int64_t>& rows, std::vector<unsigned char>& storage) {
  const int64_t row_bytes = m.cols * dtype_size(m.dtype);
  storage.resize(rows.size() * row_bytes);
  for (size_t r = 0; r < rows.size(); ++r) {
    std::memcpy(storage.data() + r * row_bytes, static_cast<const unsigned char*>(m.data) + rows[r] * row_bytes,
                row_bytes);
  }
  Matrix gathered = m;
  gathered.data = storage.data();
  gathered.rows = static_cast<int64_t>(rows.size());
  return gathered;
}

}  // namespace clipadapt::knn
