// The exact scores of exact_score.h on the GPU: the warp form of the canonical dot product,
// canonical row norms, and the re-scoring of a fast pass's candidate lists (rescore.h is the
// CPU twin and the test oracle). Include from .cu files only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "knn/exact_score.h"
#include "knn/topk_cuda.cuh"
#include "knn/topk_rules.h"

namespace clipadapt::knn {

// The element loader of exact_score.h for a device storage type.
template <typename T>
struct ElementsOf;
template <>
struct ElementsOf<float> {
  using Type = Float32Elements;
  static __device__ Type view(const float* p) { return {p}; }
};
template <>
struct ElementsOf<__half> {
  using Type = Float16Elements;
  static __device__ Type view(const __half* p) { return {reinterpret_cast<const uint16_t*>(p)}; }
};
template <>
struct ElementsOf<__nv_bfloat16> {
  using Type = BFloat16Elements;
  static __device__ Type view(const __nv_bfloat16* p) { return {reinterpret_cast<const uint16_t*>(p)}; }
};

// canonical_dot as a warp computes it: lane l sums elements l, l + 32, ... in order (the
// host's lane l), then shfl_down adds lane l + offset into lane l for offset 16, 8, ..., 1
// (the host's reduce_lanes). Every lane returns lane 0's sum. The products are exact in
// float64, so a contracted multiply-add gives the same bits.
template <typename Elements>
__device__ __forceinline__ double warp_canonical_dot(Elements a, Elements b, int64_t d, int lane) {
  double sum = 0.0;
  for (int64_t c = lane; c < d; c += kCanonicalLanes) sum += double(a[c]) * double(b[c]);
  for (int offset = kCanonicalLanes / 2; offset >= 1; offset /= 2) sum += __shfl_down_sync(kFullMask, sum, offset);
  return __shfl_sync(kFullMask, sum, 0);
}

// Norm bounds of key_error_bound as the bit patterns of non-negative doubles (ordered like
// the doubles, so atomicMax on them is a max on the values).
struct DeviceNormBounds {
  unsigned long long max_norm_bits;
  unsigned long long max_inverse_norm_bits;
};

__device__ __forceinline__ void include_squared_norm(DeviceNormBounds* bounds, double squared_norm) {
  if (!usable_squared_norm(squared_norm)) return;
  const double norm = sqrt(squared_norm);
  atomicMax(&bounds->max_norm_bits, static_cast<unsigned long long>(__double_as_longlong(norm)));
  if (norm > 0.0) {
    atomicMax(&bounds->max_inverse_norm_bits, static_cast<unsigned long long>(__double_as_longlong(1.0 / norm)));
  }
}

// One warp per row: canonical squared norm, and (optionally) fast-pass term and bounds.
template <typename T>
__global__ void canonical_norms_kernel(const T* rows, int64_t count, int64_t d, Metric metric, double* squared_norms,
                                       float* terms, DeviceNormBounds* bounds) {
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= count) return;  // warp-uniform
  const auto values = ElementsOf<T>::view(rows + row * d);
  const double squared = warp_canonical_dot(values, values, d, lane);
  if (lane != 0) return;
  squared_norms[row] = squared;
  if (terms != nullptr) terms[row] = fast_term(squared, metric);
  if (bounds != nullptr) include_squared_norm(bounds, squared);
}

template <typename T>
void launch_canonical_norms(const T* rows, int64_t count, int64_t d, Metric metric, double* squared_norms,
                            float* terms, DeviceNormBounds* bounds, cudaStream_t stream) {
  if (count == 0) return;
  constexpr int kRowsPerBlock = 8;
  const auto blocks = static_cast<unsigned>((count + kRowsPerBlock - 1) / kRowsPerBlock);
  canonical_norms_kernel<T><<<blocks, 32 * kRowsPerBlock, 0, stream>>>(rows, count, d, metric, squared_norms, terms,
                                                                        bounds);
  CLIPADAPT_CUDA_CHECK_LAUNCH();
}

// The squared norms alone.
template <typename T>
void launch_canonical_norms(const T* rows, int64_t count, int64_t d, double* squared_norms, cudaStream_t stream) {
  launch_canonical_norms(rows, count, d, Metric::InnerProduct, squared_norms, nullptr, nullptr, stream);
}

// A fast pass's output: per query, `width` (fast key, database row) pairs, best first; an
// empty slot holds (-inf, kEmptyIndex).
struct CandidateLists {
  float* keys;
  int64_t* rows;
  int width;
};

struct RescoreProblem {
  int64_t queries;
  int64_t dim;
  int k;
  Metric metric;
  double product_error;     // relative error of the fast pass's products (exact_score.h)
  bool flushes_subnormals;  // tensor cores may flush subnormals
  bool exhaustive;       // every list holds every row its query could get
  const double* query_norms;
  const double* row_norms;
  const DeviceNormBounds* bounds;
  float* scores;         // out [queries, k]
  int64_t* indices;      // out [queries, k]
  int* retries;          // out: queries whose band did not fit their list
};

// One warp per query: the band of its list (rescore_query's rule) re-scored exactly in place,
// then each candidate's rank among the band by (key, row) counted, and the top k written.
// A query whose band may extend past its list only counts itself in `retries`.
template <typename T>
__global__ void rescore_kernel(const T* queries, const T* database, CandidateLists lists, RescoreProblem p) {
  const int lane = threadIdx.x % 32;
  const int64_t q = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (q >= p.queries) return;  // warp-uniform
  const int width = lists.width, k = p.k;
  float* keys = lists.keys + q * width;
  const int64_t* rows = lists.rows + q * width;
  double threshold = -INFINITY;
  if (rows[k - 1] != kEmptyIndex) {
    const double bound = key_error_bound(p.metric, p.dim, sqrt(p.query_norms[q]),
                                         __longlong_as_double(static_cast<long long>(p.bounds->max_norm_bits)),
                                         __longlong_as_double(static_cast<long long>(p.bounds->max_inverse_norm_bits)),
                                         p.product_error, p.flushes_subnormals);
    threshold = double(keys[k - 1]) - 2.0 * bound * (1.0 + 1e-6);
  }
  const bool full = rows[width - 1] != kEmptyIndex;
  if (full && !p.exhaustive && !(double(keys[width - 1]) < threshold)) {
    if (lane == 0) atomicAdd(p.retries, 1);
    return;
  }
  int band = 0;
  while (band < width && rows[band] != kEmptyIndex && double(keys[band]) >= threshold) ++band;
  const auto query = ElementsOf<T>::view(queries + q * p.dim);
  for (int j = 0; j < band; ++j) {
    const double dot = warp_canonical_dot(query, ElementsOf<T>::view(database + rows[j] * p.dim), p.dim, lane);
    if (lane == 0) keys[j] = exact_key(dot, p.query_norms[q], p.row_norms[rows[j]], p.metric);
  }
  __syncwarp();
  int valid = 0;
  for (int i = lane; i < band; i += 32) {
    const float key = keys[i];
    if (key != key) continue;  // an unusable row: never reported
    ++valid;
    int rank = 0;
    for (int j = 0; j < band; ++j) rank += (keys[j] == keys[j] && ranks_before(keys[j], rows[j], key, rows[i])) ? 1 : 0;
    if (rank < k) {
      p.scores[q * k + rank] = score_from_key(key, p.metric);
      p.indices[q * k + rank] = rows[i];
    }
  }
  for (int offset = 16; offset >= 1; offset /= 2) valid += __shfl_xor_sync(kFullMask, valid, offset);
  for (int s = valid + lane; s < k; s += 32) {
    p.scores[q * k + s] = score_from_key(-INFINITY, p.metric);
    p.indices[q * k + s] = -1;
  }
}

}  // namespace clipadapt::knn
