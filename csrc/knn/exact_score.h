// The exact score of a (query row, database row) pair, and the error bound of the fast pass.
//
// Every score the library reports is `exact_key` of the two rows: dot products accumulated in
// float64 in one canonical order, from products of the float32 values (exact in float64, so
// a fused multiply-add gives the same bits as a multiply then an add), then the metric in
// float64, rounded once to float32. The canonical order is that of a 32-lane warp: lane l sums
// the elements l, l + 32, l + 64, ... in increasing order, then the lanes are added pairwise
// (lane l + 16 into lane l, then l + 8, ..., l + 1). The same host/device functions run on the
// CPU and the GPU, so a score is a function of the two rows alone: not of their positions,
// of how queries are batched, of threads, of the BLAS kernel or of the device.
//
// The fast pass (sgemm tiles on the CPU, FFMA / tensor-core tiles on the GPU) only selects
// candidates; `key_error_bound` bounds how far its key can lie from the exact one.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/half.h"
#include "knn/knn.h"
#include "knn/topk_rules.h"

namespace clipadapt::knn {

constexpr int kCanonicalLanes = 32;

// The canonical dot must be inlined into the CPU's vector clones (core/simd.h) to be compiled
// for their instruction sets.
#if defined(__CUDACC__)
#define CLIPADAPT_HD_INLINE CLIPADAPT_HD
#else
#define CLIPADAPT_HD_INLINE inline __attribute__((always_inline))
#endif

// Element loaders: the float32 value of one stored element.
struct Float32Elements {
  const float* data;
  CLIPADAPT_HD float operator[](int64_t i) const { return data[i]; }
};
struct BFloat16Elements {
  const uint16_t* data;
  CLIPADAPT_HD float operator[](int64_t i) const { return bfloat16_to_float(data[i]); }
};
struct Float16Elements {
  const uint16_t* data;
  CLIPADAPT_HD float operator[](int64_t i) const { return float16_to_float(data[i]); }
};

// The lane partial sums reduced in the canonical pairwise order (lanes[] is overwritten).
CLIPADAPT_HD_INLINE double reduce_lanes(double* lanes) {
  for (int offset = kCanonicalLanes / 2; offset >= 1; offset /= 2) {
    for (int lane = 0; lane < offset; ++lane) lanes[lane] += lanes[lane + offset];
  }
  return lanes[0];
}

// The canonical dot product of d elements of a and b (host form; the GPU form gives each
// lane of a warp its stride and reduces with the same pairwise pattern).
template <typename Elements>
CLIPADAPT_HD_INLINE double canonical_dot(Elements a, Elements b, int64_t d) {
  double lanes[kCanonicalLanes] = {};
  int64_t start = 0;
  for (; start + kCanonicalLanes <= d; start += kCanonicalLanes) {
    for (int lane = 0; lane < kCanonicalLanes; ++lane) {
      lanes[lane] += double(a[start + lane]) * double(b[start + lane]);
    }
  }
  for (int lane = 0; start + lane < d; ++lane) lanes[lane] += double(a[start + lane]) * double(b[start + lane]);
  return reduce_lanes(lanes);
}

// Rows whose squared norm is not finite or not below this limit (norm >= 2^50) are treated
// as non-finite: their float32 dot products could overflow in the fast pass.
constexpr double kMaxSquaredNorm = 0x1p100;

CLIPADAPT_HD bool usable_squared_norm(double squared_norm) {
  return squared_norm >= 0.0 && squared_norm < kMaxSquaredNorm;  // false for NaN and Inf
}

// The fast pass's per-row term (topk_rules.h row_term) from the canonical squared norm; NaN
// for an unusable row, so that none of its fast keys is ever selected.
CLIPADAPT_HD float fast_term(double squared_norm, Metric metric) {
  return usable_squared_norm(squared_norm) ? row_term(squared_norm, metric) : NAN;
}

// The exact ranking key (larger is better; L2 negated) from the canonical dot product and
// the canonical squared norms of the two rows. NaN when either row is unusable, so such a
// pair is never selected.
CLIPADAPT_HD float exact_key(double dot, double query_squared_norm, double row_squared_norm, Metric metric) {
  if (!usable_squared_norm(query_squared_norm) || !usable_squared_norm(row_squared_norm)) return NAN;
  switch (metric) {
    case Metric::Cosine: {
      const double norms = query_squared_norm * row_squared_norm;
      return norms > 0.0 ? float(dot / sqrt(norms)) : 0.0f;
    }
    case Metric::L2: {
      const double distance = query_squared_norm + row_squared_norm - 2.0 * dot;
      return distance > 0.0 ? float(-distance) : 0.0f;  // +0, never -0
    }
    case Metric::InnerProduct: break;
  }
  return float(dot);
}

// Relative error bound of a float32 dot product of length d in any summation order, with a
// few extra roundings for the metric arithmetic (gamma_{d+8} of Higham, 1% slack).
CLIPADAPT_HD double float32_sum_error(int64_t d) {
  const double u = 0x1p-24, terms = double(d + 8) * u;
  return 1.01 * terms / (1.0 - terms);
}

// Bound on |fast key - exact key| for one query against any row of the database, given the
// query's norm, the largest row norm and the largest inverse row norm among the rows the
// fast pass scanned, and the relative error of its products (0 for float32 inputs multiplied
// in float32; 2^-10 for tf32 tensor cores). Includes underflow: subnormal products, or, when
// the fast pass flushes subnormal inputs and results to zero (AVX-512 BF16, tensor cores),
// up to 2^-126 per term scaled by the larger operand; and the final rounding of the exact key.
CLIPADAPT_HD double key_error_bound(Metric metric, int64_t d, double query_norm, double max_row_norm,
                                    double max_inverse_row_norm, double product_error, bool flushes_subnormals) {
  const double relative = float32_sum_error(d) + 1.01 * product_error;
  const double per_term = flushes_subnormals ? 0x1p-125 * (1.0 + query_norm + max_row_norm) : 0x1p-148;
  const double underflow = double(d) * per_term;
  switch (metric) {
    case Metric::Cosine: {
      const double inverse_query = query_norm > 0.0 ? 1.0 / query_norm : 0.0;
      return relative + 1.01 * underflow * inverse_query * max_inverse_row_norm;
    }
    case Metric::L2: {
      const double reach = query_norm + max_row_norm;
      return 2.0 * relative * reach * reach + 2.0 * underflow;
    }
    case Metric::InnerProduct: break;
  }
  return relative * query_norm * max_row_norm + underflow;
}

}  // namespace clipadapt::knn
