// The ranking rules that the CPU and CUDA k-NN kernels must agree on, shared as
// host/device functions so that they are unit-tested on the CPU.
//
// Internally every metric is a "key" where larger is better (L2 distances are negated), and
// an empty top-k slot holds the sentinel (-inf, kEmptyIndex), which any real candidate beats.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/half.h"  // CLIPADAPT_HD
#include "knn/knn.h"

namespace clipadapt::knn {

constexpr int64_t kEmptyIndex = std::numeric_limits<int64_t>::max();

// Does candidate a rank before candidate b? Higher key first, then smaller index.
// A NaN key never ranks before anything, so NaN scores are never selected.
CLIPADAPT_HD bool ranks_before(float key_a, int64_t index_a, float key_b, int64_t index_b) {
  return key_a > key_b || (key_a == key_b && index_a < index_b);
}

// Per-row terms that turn a dot product into the metric: inverse norm (cosine) or squared
// norm (L2); unused for the inner product.
CLIPADAPT_HD float row_term(double squared_norm, Metric metric) {
  if (metric == Metric::Cosine) return squared_norm > 0.0 ? float(1.0 / sqrt(squared_norm)) : 0.0f;
  if (metric == Metric::L2) return float(squared_norm);
  return 1.0f;
}

// The ranking key of a pair from its dot product and the two row terms.
CLIPADAPT_HD float key_from_dot(float dot, float query_term, float database_term, Metric metric) {
  switch (metric) {
    case Metric::Cosine: return dot * query_term * database_term;
    case Metric::L2: {
      const float distance = query_term + database_term - 2.0f * dot;
      if (distance != distance) return distance;  // NaN (a non-finite row) is never selected
      return distance > 0.0f ? -distance : 0.0f;
    }
    case Metric::InnerProduct: break;
  }
  return dot;
}

// The key a fast-pass slab row is sorted by (descending, stable, by CUB's radix order of
// float bits): NaN becomes -NaN, which that order puts after every number, and -0 becomes +0,
// which ranks_before already ties with +0 but the bit order would not.
CLIPADAPT_HD float slab_key(float key) {
  if (key != key) return -NAN;
  return key == 0.0f ? 0.0f : key;
}

// The reported score of a key (undoes the L2 negation, a zero distance as +0; empty slots
// report -inf / +inf).
CLIPADAPT_HD float score_from_key(float key, Metric metric) {
  return metric == Metric::L2 ? 0.0f - key : key;
}

CLIPADAPT_HD int64_t reported_index(int64_t index) { return index == kEmptyIndex ? -1 : index; }

}  // namespace clipadapt::knn
