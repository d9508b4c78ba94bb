// CUDA k-NN, in two passes as on the CPU (rescore.h): a fast pass selects a few more than k
// candidates per query by a float32 key, then rescore_kernel (exact_score_cuda.cuh) re-scores
// the candidates near the k-th exactly and writes the top k.
//
// Fast pass: one fused kernel per (dtype, precision): a thread block owns 64 queries, walks
// the database in 64-row tiles, computes each 64 x 64 dot-product tile on tensor cores (WMMA:
// fp16/bf16 16x16x16, tf32 16x16x8) or with FFMA (float32), turns it into metric keys and
// merges it into per-query best-first lists held in shared memory. Only the [nq, width] lists
// reach global memory. A list longer than kMaxFusedK, or one that does not fit the device's
// shared memory, takes the large-k path: the same tile code writes the keys of a chunk of
// queries to a scratch slab, from which each row's best `width` are radix-selected
// (select_rules.h), or for very long lists sorted by a CUB stable segmented sort.
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_sort.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "core/errors.h"
#include "core/parallel.h"
#include "knn/exact_score_cuda.cuh"
#include "knn/knn.h"
#include "knn/rescore.h"
#include "knn/select_rules.h"
#include "knn/topk_cuda.cuh"
#include "knn/topk_rules.h"

namespace clipadapt::knn {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kTileQueries = 64;
constexpr int kTileRows = 64;  // database rows per tile
constexpr int kChunk = 32;     // feature columns staged in shared memory at a time
constexpr int kThreads = 128;  // 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int kScoreLd = kTileRows + 4;

template <typename T>
__device__ __forceinline__ T zero_value() { return T(0.0f); }

// The 2 x 2 grid of 16 x 16 float accumulators a warp owns (a 32 x 32 quarter of the tile),
// for WMMA shapes 16x16x16 (fp16/bf16) and 16x16x8 (tf32).
template <int kDepth>
struct WarpAccumulator {
  wmma::fragment<wmma::accumulator, 16, 16, kDepth, float> tiles[2][2];
  __device__ void zero() {
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) wmma::fill_fragment(tiles[i][j], 0.0f);
  }
  __device__ void store(float* scores, int warp) const {
    const int row0 = (warp / 2) * 32, col0 = (warp % 2) * 32;
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        wmma::store_matrix_sync(scores + (row0 + 16 * i) * kScoreLd + col0 + 16 * j, tiles[i][j], kScoreLd,
                                wmma::mem_row_major);
  }
};

// ---- Tile policies: how a 64 x 64 dot-product tile is computed from staged chunks ----------

// bfloat16 and tf32 WMMA fragments exist from sm_80 on; for older devices (sm_75) those two
// policies compile as stubs that trap, and the host refuses or reroutes such work first
// (check_tensor_core_support).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define CLIPADAPT_SM80_FRAGMENTS 1
#else
#define CLIPADAPT_SM80_FRAGMENTS 0
#endif

// The interface of a tile policy on a device without its fragments.
template <typename T>
struct UnavailablePolicy {
  using Element = T;
  static constexpr int kLd = kChunk + 8;
  struct Accumulator {};
  static __device__ void zero(Accumulator&) { __trap(); }
  static __device__ void multiply(Accumulator&, const T*, const T*, int) { __trap(); }
  static __device__ void store(const Accumulator&, float*, int) { __trap(); }
};

// fp16 / bf16 on tensor cores; each warp owns a 32 x 32 quarter as 2 x 2 16x16 fragments.
template <typename T>
struct TensorCoreHalf {
  using Element = T;
  static constexpr int kLd = kChunk + 8;  // WMMA wants ldm % 8 == 0 for 16-bit types
  using Accumulator = WarpAccumulator<16>;
  static __device__ void zero(Accumulator& acc) { acc.zero(); }
  static __device__ void multiply(Accumulator& acc, const T* q, const T* x, int warp) {
    const int row0 = (warp / 2) * 32, col0 = (warp % 2) * 32;
#pragma unroll
    for (int step = 0; step < kChunk; step += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(a[i], q + (row0 + 16 * i) * kLd + step, kLd);
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(b[j], x + (col0 + 16 * j) * kLd + step, kLd);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc.tiles[i][j], a[i], b[j], acc.tiles[i][j]);
    }
  }
  static __device__ void store(const Accumulator& acc, float* scores, int warp) { acc.store(scores, warp); }
};

#if !CLIPADAPT_SM80_FRAGMENTS
template <>
struct TensorCoreHalf<__nv_bfloat16> : UnavailablePolicy<__nv_bfloat16> {};
#endif

// float32 rounded to tf32 on tensor cores (16x16x8), same warp layout.
#if CLIPADAPT_SM80_FRAGMENTS
struct TensorCoreTf32 {
  using Element = float;
  static constexpr int kLd = kChunk + 8;
  using Accumulator = WarpAccumulator<8>;
  static __device__ void zero(Accumulator& acc) { acc.zero(); }
  static __device__ void multiply(Accumulator& acc, const float* q, const float* x, int warp) {
    const int row0 = (warp / 2) * 32, col0 = (warp % 2) * 32;
#pragma unroll
    for (int step = 0; step < kChunk; step += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> b[2];
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(a[i], q + (row0 + 16 * i) * kLd + step, kLd);
        for (int e = 0; e < a[i].num_elements; ++e) a[i].x[e] = wmma::__float_to_tf32(a[i].x[e]);
      }
      for (int j = 0; j < 2; ++j) {
        wmma::load_matrix_sync(b[j], x + (col0 + 16 * j) * kLd + step, kLd);
        for (int e = 0; e < b[j].num_elements; ++e) b[j].x[e] = wmma::__float_to_tf32(b[j].x[e]);
      }
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc.tiles[i][j], a[i], b[j], acc.tiles[i][j]);
    }
  }
  static __device__ void store(const Accumulator& acc, float* scores, int warp) { acc.store(scores, warp); }
};
#else
struct TensorCoreTf32 : UnavailablePolicy<float> {};
#endif

// Exact float32 with FFMA: each thread owns a 4 x 8 block of the tile.
struct ExactFloat {
  using Element = float;
  static constexpr int kLd = kChunk + 1;  // odd stride: rows of x fall in different banks
  struct Accumulator {
    float value[4][8];
  };
  static __device__ void zero(Accumulator& acc) {
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 8; ++j) acc.value[i][j] = 0.0f;
  }
  static __device__ void multiply(Accumulator& acc, const float* q, const float* x, int) {
    const int row0 = (threadIdx.x / 8) * 4, col0 = (threadIdx.x % 8) * 8;
#pragma unroll 4
    for (int c = 0; c < kChunk; ++c) {
      float qv[4], xv[8];
      for (int i = 0; i < 4; ++i) qv[i] = q[(row0 + i) * kLd + c];
      for (int j = 0; j < 8; ++j) xv[j] = x[(col0 + j) * kLd + c];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 8; ++j) acc.value[i][j] = fmaf(qv[i], xv[j], acc.value[i][j]);
    }
  }
  static __device__ void store(const Accumulator& acc, float* scores, int) {
    const int row0 = (threadIdx.x / 8) * 4, col0 = (threadIdx.x % 8) * 8;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 8; ++j) scores[(row0 + i) * kScoreLd + col0 + j] = acc.value[i][j];
  }
};

// ---- Shared pieces -------------------------------------------------------------------------

struct Geometry {
  int64_t queries, rows, dim;
};

// Stages rows [first, first + 64) x columns [col, col + kChunk) of a [count, dim] matrix,
// zero-filling past the edges so partial tiles multiply as if padded.
template <typename T, int kLd>
__device__ void stage_chunk(T* tile, const T* source, int64_t first, int64_t count, int64_t dim, int64_t col) {
  for (int e = threadIdx.x; e < kTileRows * kChunk; e += kThreads) {
    const int r = e / kChunk, c = e % kChunk;
    const int64_t row = first + r, column = col + c;
    tile[r * kLd + c] = (row < count && column < dim) ? source[row * dim + column] : zero_value<T>();
  }
}

// Computes the 64 x 64 dot tile of queries [q0, q0+64) x database rows [x0, x0+64) into scores.
template <typename Policy>
__device__ void dot_tile(const typename Policy::Element* queries, const typename Policy::Element* database,
                         const Geometry& g, int64_t q0, int64_t x0, typename Policy::Element* q_stage,
                         typename Policy::Element* x_stage, float* scores) {
  using T = typename Policy::Element;
  typename Policy::Accumulator acc;
  Policy::zero(acc);
  const int warp = threadIdx.x / 32;
  for (int64_t col = 0; col < g.dim; col += kChunk) {
    stage_chunk<T, Policy::kLd>(q_stage, queries, q0, g.queries, g.dim, col);
    stage_chunk<T, Policy::kLd>(x_stage, database, x0, g.rows, g.dim, col);
    __syncthreads();
    Policy::multiply(acc, q_stage, x_stage, warp);
    __syncthreads();
  }
  Policy::store(acc, scores, warp);
  __syncthreads();
}

struct KeyRule {
  const float* query_terms;
  const float* database_terms;
  Metric metric;
  bool exclude_self;
  int64_t first_query = 0;  // queries of this launch start at this row of the problem
  __device__ float key(float dot, int64_t query, int64_t row) const {
    query += first_query;
    if (exclude_self && query == row) return NAN;  // never selected
    const float query_term = query_terms[query], database_term = database_terms[row];
    if (query_term != query_term || database_term != database_term) return NAN;  // an unusable row
    return key_from_dot(dot, query_term, database_term, metric);
  }
};

// Byte offsets of a tile kernel's dynamic shared memory: the query and database stages, the
// score tile, and (fused kernel) the per-query lists of `width` indices, then keys.
struct SharedLayout {
  size_t x_stage, scores, list_indices, list_keys, total;
};

template <typename Policy>
constexpr SharedLayout shared_layout(int width) {
  const size_t stage = size_t(kTileRows) * Policy::kLd * sizeof(typename Policy::Element);
  SharedLayout layout{};
  layout.x_stage = stage;
  layout.scores = 2 * stage;
  layout.list_indices = layout.scores + size_t(kTileQueries) * kScoreLd * sizeof(float);
  layout.list_keys = layout.list_indices + size_t(kTileQueries) * width * sizeof(int64_t);
  layout.total = layout.list_keys + size_t(kTileQueries) * width * sizeof(float);
  return layout;
}

// WMMA loads and stores need 256-bit aligned pointers: the stages and the score tile, and each
// 16-row / 16-column fragment offset within them; the int64 lists need 8 bytes.
template <typename Policy>
constexpr bool layout_aligned() {
  constexpr SharedLayout layout = shared_layout<Policy>(kMaxFusedK);
  constexpr size_t element = sizeof(typename Policy::Element);
  return layout.x_stage % 32 == 0 && layout.scores % 32 == 0 && layout.list_indices % 8 == 0 &&
         (16 * Policy::kLd * element) % 32 == 0 && (16 * kScoreLd * sizeof(float)) % 32 == 0;
}
static_assert(layout_aligned<TensorCoreHalf<__half>>() && layout_aligned<TensorCoreHalf<__nv_bfloat16>>() &&
                  layout_aligned<TensorCoreTf32>() && layout_aligned<ExactFloat>(),
              "shared memory layout breaks WMMA or int64 alignment");

template <typename Policy>
constexpr size_t staging_bytes() {
  return shared_layout<Policy>(0).total;
}

// ---- Fused path: per-query lists in shared memory -------------------------------------------

// warp_insert (knn/topk_cuda.cuh) keeps each query's best-first list in shared memory.

template <typename Policy>
__global__ void __launch_bounds__(kThreads) fused_knn_kernel(const typename Policy::Element* queries,
                                                             const typename Policy::Element* database, Geometry g,
                                                             int k, KeyRule rule, CandidateLists out) {
  using T = typename Policy::Element;
  extern __shared__ __align__(128) unsigned char shared[];
  const SharedLayout layout = shared_layout<Policy>(k);
  T* q_stage = reinterpret_cast<T*>(shared);
  T* x_stage = reinterpret_cast<T*>(shared + layout.x_stage);
  float* scores = reinterpret_cast<float*>(shared + layout.scores);
  int64_t* list_indices = reinterpret_cast<int64_t*>(shared + layout.list_indices);
  float* list_keys = reinterpret_cast<float*>(shared + layout.list_keys);

  const int64_t q0 = int64_t(blockIdx.x) * kTileQueries;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int s = threadIdx.x; s < kTileQueries * k; s += kThreads) {
    list_keys[s] = -INFINITY;
    list_indices[s] = kEmptyIndex;
  }
  for (int64_t x0 = 0; x0 < g.rows; x0 += kTileRows) {
    dot_tile<Policy>(queries, database, g, q0, x0, q_stage, x_stage, scores);
    for (int r = warp; r < kTileQueries && q0 + r < g.queries; r += kWarps) {
      const int64_t query = q0 + r;
      float* keys = list_keys + r * k;
      int64_t* indices = list_indices + r * k;
      for (int c0 = 0; c0 < kTileRows; c0 += 32) {
        const int64_t row = x0 + c0 + lane;
        const float key = row < g.rows ? rule.key(scores[r * kScoreLd + c0 + lane], query, row) : NAN;
        unsigned pending = __ballot_sync(kFullMask, ranks_before(key, row, keys[k - 1], indices[k - 1]));
        while (pending) {
          const int source = __ffs(pending) - 1;
          pending &= pending - 1;
          warp_insert(keys, indices, k, __shfl_sync(kFullMask, key, source),
                      __shfl_sync(kFullMask, row, source), lane);
        }
      }
    }
    __syncthreads();
  }
  for (int s = threadIdx.x; s < kTileQueries * k; s += kThreads) {
    const int64_t query = q0 + s / k;
    if (query >= g.queries) continue;
    out.keys[query * k + s % k] = list_keys[s];
    out.rows[query * k + s % k] = list_indices[s];
  }
}

// ---- Large-k path: a slab of keys per chunk of queries -------------------------------------

// Keys of queries [chunk_first, chunk_first + chunk_queries) against every database row, as a
// [chunk_queries, rows] slab of slab_key (topk_rules.h).
template <typename Policy>
__global__ void __launch_bounds__(kThreads) key_slab_kernel(const typename Policy::Element* queries,
                                                            const typename Policy::Element* database, Geometry g,
                                                            int64_t chunk_first, int64_t chunk_queries,
                                                            KeyRule rule, float* slab) {
  using T = typename Policy::Element;
  extern __shared__ __align__(128) unsigned char shared[];
  constexpr SharedLayout layout = shared_layout<Policy>(0);
  T* q_stage = reinterpret_cast<T*>(shared);
  T* x_stage = reinterpret_cast<T*>(shared + layout.x_stage);
  float* scores = reinterpret_cast<float*>(shared + layout.scores);
  const int64_t q0 = chunk_first + int64_t(blockIdx.y) * kTileQueries;
  const int64_t x0 = int64_t(blockIdx.x) * kTileRows;
  dot_tile<Policy>(queries, database, g, q0, x0, q_stage, x_stage, scores);
  for (int e = threadIdx.x; e < kTileQueries * kTileRows; e += kThreads) {
    const int r = e / kTileRows, c = e % kTileRows;
    const int64_t query = q0 + r, row = x0 + c;
    if (query >= chunk_first + chunk_queries || row >= g.rows) continue;
    slab[(query - chunk_first) * g.rows + row] = slab_key(rule.key(scores[r * kScoreLd + c], query, row));
  }
}

__global__ void fill_column_indices(int32_t* values, int64_t total, int64_t rows) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    values[i] = static_cast<int32_t>(i % rows);
}

__global__ void fill_segment_offsets(int64_t* offsets, int64_t segments, int64_t rows) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i <= segments; i += int64_t(gridDim.x) * blockDim.x)
    offsets[i] = i * rows;
}

__global__ void write_sorted_prefix(const float* sorted_keys, const int32_t* sorted_rows, int64_t chunk_first,
                                    int64_t chunk_queries, int64_t rows, CandidateLists out) {
  const int width = out.width;
  const int64_t total = chunk_queries * width;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t query = i / width, rank = i % width;
    const float key = sorted_keys[query * rows + rank];
    const bool empty = key != key;
    out.keys[(chunk_first + query) * width + rank] = empty ? -INFINITY : key;
    out.rows[(chunk_first + query) * width + rank] = empty ? kEmptyIndex : sorted_rows[query * rows + rank];
  }
}

// ---- Host side -----------------------------------------------------------------------------

template <typename Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes) {
  CLIPADAPT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// Dynamic shared memory of the fused kernel for lists of `width`.
template <typename Policy>
size_t fused_shared_bytes(int width) {
  return shared_layout<Policy>(width).total;
}

size_t device_shared_memory_limit() {
  int device = 0, limit = 0;
  CLIPADAPT_CUDA_CHECK(cudaGetDevice(&device));
  CLIPADAPT_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return static_cast<size_t>(limit);
}

// Queries per fused launch: between launches the caller's thread can answer Ctrl-C.
constexpr int64_t kQueriesPerLaunch = int64_t(1) << 16;

template <typename Policy>
void run_fused(const KnnProblem& p, const Geometry& g, const KeyRule& rule, const CandidateLists& lists,
               cudaStream_t stream) {
  using T = typename Policy::Element;
  const size_t shared_bytes = fused_shared_bytes<Policy>(lists.width);
  allow_shared_memory(fused_knn_kernel<Policy>, shared_bytes);
  for (int64_t first = 0; first < g.queries; first += kQueriesPerLaunch) {
    const int64_t count = std::min(kQueriesPerLaunch, g.queries - first);
    const Geometry part{count, g.rows, g.dim};
    const KeyRule shifted{rule.query_terms, rule.database_terms, rule.metric, rule.exclude_self, first};
    const CandidateLists out{lists.keys + first * lists.width, lists.rows + first * lists.width, lists.width};
    const auto blocks = static_cast<unsigned>((count + kTileQueries - 1) / kTileQueries);
    fused_knn_kernel<Policy><<<blocks, kThreads, shared_bytes, stream>>>(
        p.queries.as<const T>() + first * g.dim, p.database.as<const T>(), part, lists.width, shifted, out);
    CLIPADAPT_CUDA_CHECK_LAUNCH();
    if (first + count < g.queries) {
      CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream));
      if (interrupt_requested()) throw Interrupted();
    }
  }
}
// ---- Slab selection: radix-select each row's best `width` (select_rules.h) -------------------

constexpr int kSelectThreads = 256;
constexpr int kMaxSelectWidth = 2048;  // the selected (bits, row) pairs are staged in shared memory

// One block per slab row: four digit passes find the width-th best key, one pass in row
// order takes everything above it and the first entries equal to it, and each taken entry's
// rank among them places it best first.
__global__ void __launch_bounds__(kSelectThreads)
    select_top_kernel(const float* slab, int64_t rows, int64_t chunk_first, CandidateLists out) {
  using Scan = cub::BlockScan<int, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ uint32_t counts[kDigits];
  __shared__ uint32_t prefix, needed;
  __shared__ int filled, equal_seen;
  extern __shared__ __align__(16) unsigned char staged[];
  const int width = out.width;
  int64_t* staged_rows = reinterpret_cast<int64_t*>(staged);
  uint32_t* staged_bits = reinterpret_cast<uint32_t*>(staged_rows + width);
  const float* keys = slab + int64_t(blockIdx.x) * rows;
  if (threadIdx.x == 0) {
    prefix = 0;
    needed = static_cast<uint32_t>(width);
    filled = 0;
    equal_seen = 0;
  }
  for (int pass = 0; pass < kDigitPasses; ++pass) {
    for (int digit = threadIdx.x; digit < kDigits; digit += kSelectThreads) counts[digit] = 0;
    __syncthreads();
    const uint32_t shared_prefix = prefix;
    for (int64_t i = threadIdx.x; i < rows; i += kSelectThreads) {
      const uint32_t bits = ordered_key_bits(keys[i]);
      if (shares_prefix(bits, shared_prefix, pass)) atomicAdd(&counts[key_digit(bits, pass)], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) prefix = (shared_prefix << kDigitBits) | choose_digit(counts, needed);
    __syncthreads();
  }
  const uint32_t threshold = prefix;
  const int take_equal = static_cast<int>(needed);
  for (int64_t base = 0; base < rows; base += kSelectThreads) {
    const int64_t i = base + threadIdx.x;
    const uint32_t bits = i < rows ? ordered_key_bits(keys[i]) : 0u;
    const int equal = (i < rows && bits == threshold) ? 1 : 0;
    int before = 0, total = 0;
    Scan(scan_storage).ExclusiveSum(equal, before, total);
    if ((i < rows && bits > threshold) || (equal && equal_seen + before < take_equal)) {
      const int slot = atomicAdd(&filled, 1);
      staged_bits[slot] = bits;
      staged_rows[slot] = i;
    }
    __syncthreads();
    if (threadIdx.x == 0) equal_seen += total;
    __syncthreads();
  }
  float* out_keys = out.keys + (chunk_first + blockIdx.x) * width;
  int64_t* out_rows = out.rows + (chunk_first + blockIdx.x) * width;
  for (int s = threadIdx.x; s < width; s += kSelectThreads) {
    const uint32_t bits = staged_bits[s];
    const int64_t row = staged_rows[s];
    int rank = 0;
    for (int j = 0; j < width; ++j) rank += ordered_before(staged_bits[j], staged_rows[j], bits, row) ? 1 : 0;
    const float key = key_of_ordered_bits(bits);
    const bool empty = key != key;
    out_keys[rank] = empty ? -INFINITY : key;
    out_rows[rank] = empty ? kEmptyIndex : row;
  }
}

// Queries per slab chunk, so that the chunk's scratch (bytes_per_item per query and row) stays
// near 1 GiB.
int64_t slab_chunk(const Geometry& g, int64_t bytes_per_item) {
  const int64_t budget_items = (int64_t(1) << 30) / bytes_per_item;
  return std::clamp<int64_t>(budget_items / g.rows, 1, g.queries);
}

// Fills the key slab of each chunk of queries and hands it to finish(first, count).
template <typename Policy, typename Finish>
void for_each_slab(const KnnProblem& p, const Geometry& g, const KeyRule& rule, int64_t chunk, float* slab,
                   cudaStream_t stream, Finish&& finish) {
  using T = typename Policy::Element;
  require(g.rows < (int64_t(1) << 31), "k: the large-k GPU path supports up to 2^31 - 1 database rows");
  allow_shared_memory(key_slab_kernel<Policy>, staging_bytes<Policy>());
  for (int64_t first = 0; first < g.queries; first += chunk) {
    const int64_t count = std::min(chunk, g.queries - first);
    const dim3 grid(static_cast<unsigned>((g.rows + kTileRows - 1) / kTileRows),
                    static_cast<unsigned>((count + kTileQueries - 1) / kTileQueries));
    key_slab_kernel<Policy><<<grid, kThreads, staging_bytes<Policy>(), stream>>>(
        p.queries.as<const T>(), p.database.as<const T>(), g, first, count, rule, slab);
    CLIPADAPT_CUDA_CHECK_LAUNCH();
    finish(first, count);
    CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (interrupt_requested()) throw Interrupted();
  }
}

// Lists up to kMaxSelectWidth: radix selection per slab row (4 bytes of scratch per item).
template <typename Policy>
void run_slab_select(const KnnProblem& p, const Geometry& g, const KeyRule& rule, const CandidateLists& lists,
                     cudaStream_t stream) {
  const int64_t chunk = slab_chunk(g, sizeof(float));
  Scratch<float> slab(chunk * g.rows, stream);
  const size_t staged_bytes = size_t(lists.width) * (sizeof(int64_t) + sizeof(uint32_t));
  for_each_slab<Policy>(p, g, rule, chunk, slab.get(), stream, [&](int64_t first, int64_t count) {
    select_top_kernel<<<static_cast<unsigned>(count), kSelectThreads, staged_bytes, stream>>>(slab.get(), g.rows,
                                                                                           first, lists);
    CLIPADAPT_CUDA_CHECK_LAUNCH();
  });
}

// Longer lists (a crowded band widened towards n): a stable segmented sort of every slab row.
template <typename Policy>
void run_slab_sort(const KnnProblem& p, const Geometry& g, const KeyRule& rule, const CandidateLists& lists,
                   cudaStream_t stream) {
  // Slab, sorted copy and two index arrays: 16 bytes per (query, row).
  const int64_t chunk = slab_chunk(g, 16);
  Scratch<float> keys(chunk * g.rows, stream), sorted_keys(chunk * g.rows, stream);
  Scratch<int32_t> rows(chunk * g.rows, stream), sorted_rows(chunk * g.rows, stream);
  Scratch<int64_t> offsets(chunk + 1, stream);
  size_t temp_bytes = 0;
  CLIPADAPT_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairsDescending(
      nullptr, temp_bytes, keys.get(), sorted_keys.get(), rows.get(), sorted_rows.get(), chunk * g.rows, chunk,
      offsets.get(), offsets.get() + 1, stream));
  Scratch<unsigned char> temp(static_cast<int64_t>(temp_bytes), stream);
  fill_segment_offsets<<<grid_for(chunk + 1), kGridStrideThreads, 0, stream>>>(offsets.get(), chunk, g.rows);
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  for_each_slab<Policy>(p, g, rule, chunk, keys.get(), stream, [&](int64_t first, int64_t count) {
    fill_column_indices<<<grid_for(count * g.rows), kGridStrideThreads, 0, stream>>>(rows.get(), count * g.rows,
                                                                                      g.rows);
    CLIPADAPT_CUDA_CHECK_LAUNCH();
    CLIPADAPT_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairsDescending(
        temp.get(), temp_bytes, keys.get(), sorted_keys.get(), rows.get(), sorted_rows.get(), count * g.rows, count,
        offsets.get(), offsets.get() + 1, stream));
    write_sorted_prefix<<<grid_for(count * lists.width), kGridStrideThreads, 0, stream>>>(
        sorted_keys.get(), sorted_rows.get(), first, count, g.rows, lists);
    CLIPADAPT_CUDA_CHECK_LAUNCH();
  });
}

// The relative error of the fast pass's products (exact_score.h key_error_bound): FFMA
// multiplies float32 exactly; tf32 rounds both inputs to 10 mantissa bits; fp16/bf16 products
// are exact on tensor cores, whose float32 accumulation may truncate instead of rounding,
// which at most doubles the summation bound.
double product_error(DType dtype, Precision precision, int64_t dim) {
  if (dtype != DType::Float32) return float32_sum_error(dim);
  return precision == Precision::TF32 ? 0x1p-10 + float32_sum_error(dim) : 0.0;
}

bool uses_tensor_cores(DType dtype, Precision precision) {
  return dtype != DType::Float32 || precision == Precision::TF32;
}

template <typename Policy>
void run_fast_pass(const KnnProblem& p, const Geometry& g, const KeyRule& rule, const CandidateLists& lists,
                   cudaStream_t stream) {
  if (lists.width <= kMaxFusedK && fused_shared_bytes<Policy>(lists.width) <= device_shared_memory_limit()) {
    run_fused<Policy>(p, g, rule, lists, stream);
  } else {
    if (lists.width <= kMaxSelectWidth) {
      run_slab_select<Policy>(p, g, rule, lists, stream);
    } else {
      run_slab_sort<Policy>(p, g, rule, lists, stream);
    }
  }
}

// Fast pass, then exact re-scoring, with wider lists until every query's band fits.
template <typename Policy>
void run(const KnnProblem& p, const Geometry& g, cudaStream_t stream) {
  using T = typename Policy::Element;
  Scratch<double> query_norms(g.queries, stream), row_norms(g.rows, stream);
  Scratch<float> query_terms(g.queries, stream), database_terms(g.rows, stream);
  Scratch<DeviceNormBounds> bounds(1, stream);
  Scratch<int> retries(1, stream);
  CLIPADAPT_CUDA_CHECK(cudaMemsetAsync(bounds.get(), 0, sizeof(DeviceNormBounds), stream));
  launch_canonical_norms<T>(p.queries.as<const T>(), g.queries, g.dim, p.metric, query_norms.get(),
                            query_terms.get(), nullptr, stream);
  launch_canonical_norms<T>(p.database.as<const T>(), g.rows, g.dim, p.metric, row_norms.get(),
                            database_terms.get(), bounds.get(), stream);
  const KeyRule rule{query_terms.get(), database_terms.get(), p.metric, p.exclude_self};
  const int64_t available = g.rows - (p.exclude_self ? 1 : 0);
  for (int64_t width = initial_width(p.k, available);; width = wider_width(width, available)) {
    Scratch<float> keys(g.queries * width, stream);
    Scratch<int64_t> rows(g.queries * width, stream);
    const CandidateLists lists{keys.get(), rows.get(), static_cast<int>(width)};
    run_fast_pass<Policy>(p, g, rule, lists, stream);
    CLIPADAPT_CUDA_CHECK(cudaMemsetAsync(retries.get(), 0, sizeof(int), stream));
    const RescoreProblem rescore{g.queries,         g.dim,           static_cast<int>(p.k),
                                 p.metric,          product_error(p.queries.dtype, p.precision, g.dim),
                                 uses_tensor_cores(p.queries.dtype, p.precision),
                                 width >= available, query_norms.get(), row_norms.get(), bounds.get(),
                                 p.scores.as<float>(), p.indices.as<int64_t>(), retries.get()};
    constexpr int kWarpsPerBlock = 4;
    rescore_kernel<T><<<static_cast<unsigned>((g.queries + kWarpsPerBlock - 1) / kWarpsPerBlock), 32 * kWarpsPerBlock,
                        0, stream>>>(p.queries.as<const T>(), p.database.as<const T>(), lists, rescore);
    CLIPADAPT_CUDA_CHECK_LAUNCH();
    int host_retries = 0;
    CLIPADAPT_CUDA_CHECK(cudaMemcpyAsync(&host_retries, retries.get(), sizeof(int), cudaMemcpyDeviceToHost, stream));
    CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream));
    // Queries whose lists held their band are final; the rest are searched again, wider (all
    // queries are: the finished ones come out the same).
    if (host_retries == 0) break;
    if (interrupt_requested()) throw Interrupted();
  }
}

// bfloat16 inputs need sm_80 tensor cores; tf32 falls back to exact float32 below sm_80.
Precision check_tensor_core_support(const KnnProblem& p) {
  int device = 0, major = 0;
  CLIPADAPT_CUDA_CHECK(cudaGetDevice(&device));
  CLIPADAPT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major >= 8) return p.precision;
  if (p.queries.dtype == DType::BFloat16) {
    throw UnsupportedType("queries: bfloat16 needs a GPU of compute capability 8.0 or newer (cuda:" +
                          std::to_string(device) + " is " + std::to_string(major) +
                          ".x); cast to float16 or float32, or search on the CPU");
  }
  return Precision::Exact;
}

}  // namespace

void knn_cuda(const KnnProblem& p) {
  validate(p);
  if (p.queries.rows == 0) return;
  DeviceGuard guard(p.queries.device.index);
  auto stream = static_cast<cudaStream_t>(p.stream);
  const Geometry g{p.queries.rows, p.database.rows, p.queries.cols};
  const Precision precision = check_tensor_core_support(p);
  switch (p.queries.dtype) {
    case DType::Float16: run<TensorCoreHalf<__half>>(p, g, stream); break;
    case DType::BFloat16: run<TensorCoreHalf<__nv_bfloat16>>(p, g, stream); break;
    case DType::Float32:
      if (precision == Precision::TF32) {
        run<TensorCoreTf32>(p, g, stream);
      } else {
        run<ExactFloat>(p, g, stream);
      }
      break;
    default:
      throw UnsupportedType("queries: unsupported dtype; use float32, float16 or bfloat16");
  }
}

}  // namespace clipadapt::knn
