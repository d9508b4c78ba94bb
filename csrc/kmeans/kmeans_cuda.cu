// CUDA k-means building blocks (kmeans.h), the twins of kmeans_cpu.cpp, which is their test
// oracle. Everything runs on the caller's stream.
//
// - group_by_cluster: a device range check, then a stable CUB radix sort of (assignment,
//   row id) pairs; offsets[c] is the lower bound of c in the sorted assignments.
// - update_centroids: one thread per (cluster, coordinate) sums the cluster's rows in `order`
//   sequence in float32, exactly like the CPU loop, so the means are bitwise the CPU's. The
//   empty-cluster splits are decided on the host from the counts (they depend on the counts
//   only) and replayed on the device in the same sequence; the spherical renormalisation sums
//   each row's squares sequentially in double, like the CPU.
// - kmeans_plus_plus: the host draws the uniforms with the CPU's generator rule; the device
//   computes every per-row double sum sequentially over the columns (staged through shared
//   memory so that loads stay coalesced) and the 4096-row block sums sequentially, so the
//   weights, the block sums and therefore the chosen rows are bitwise the CPU's.
// - ivf_search: one block per query; each warp scans rows of the probed lists (lanes over the
//   columns, float32 accumulation, warp reduction) into its own best-first list in shared
//   memory (warp_insert, knn/topk_cuda.cuh); warp 0 merges the lists at the end. The result is
//   the top-k under ranks_before, whatever warp saw which row, so it is deterministic.
#include <cub/device/device_radix_sort.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "core/errors.h"
#include "core/search_rules.h"
#include "kmeans/kmeans.h"
#include "kmeans/ivf_rules.h"
#include "kmeans/seeding_rules.h"
#include "kmeans/split_rules.h"
#include "knn/exact_score_cuda.cuh"
#include "knn/topk_cuda.cuh"
#include "knn/topk_rules.h"

namespace clipadapt::kmeans {
namespace {

using knn::Metric;

constexpr int64_t kMaxGridX = (int64_t(1) << 31) - 1;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// Device -> host copy of `count` elements; returns once they (and all work queued before them
// on the stream) are done.
template <typename T>
void copy_to_host(T* host, const T* device, int64_t count, cudaStream_t stream) {
  if (count <= 0) return;
  CLIPADAPT_CUDA_CHECK(
      cudaMemcpyAsync(host, device, static_cast<size_t>(count) * sizeof(T), cudaMemcpyDeviceToHost, stream));
  CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream));
}

// Host -> device copy of `count` elements; returns once it is done, so the host buffer may go.
template <typename T>
void copy_to_device(T* device, const T* host, int64_t count, cudaStream_t stream) {
  if (count <= 0) return;
  CLIPADAPT_CUDA_CHECK(
      cudaMemcpyAsync(device, host, static_cast<size_t>(count) * sizeof(T), cudaMemcpyHostToDevice, stream));
  CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream));
}

// ---- Sequential per-row double sums (bitwise the CPU's loops) ----------------------------

constexpr int kSumRows = 128;    // rows per block, one thread each
constexpr int kSumColumns = 32;  // columns staged in shared memory at a time

// out[row] = sum over j = 0, 1, ..., d - 1 (in this order, in double) of x[row, j] * w[j],
// where w is the row itself (kSquares: the squared norm) or row `center` of x (a dot product).
// The values are widened to float32 first, as the CPU's widen_row does; a product of two
// floats is exact in double, so the sum is the CPU's to the bit.
template <typename T, bool kSquares, typename Out>
__global__ void __launch_bounds__(kSumRows)
    sequential_row_sums_kernel(const T* x, int64_t rows, int64_t d, int64_t center, Out* out) {
  __shared__ float tile[kSumRows][kSumColumns + 1];  // odd stride: a column read is conflict-free
  __shared__ float center_chunk[kSumColumns];
  const int64_t first = int64_t(blockIdx.x) * kSumRows;
  const int thread = static_cast<int>(threadIdx.x);
  double sum = 0.0;
  for (int64_t col = 0; col < d; col += kSumColumns) {
    const int width = static_cast<int>(d - col < kSumColumns ? d - col : kSumColumns);
    for (int e = thread; e < kSumRows * kSumColumns; e += kSumRows) {
      const int r = e / kSumColumns, c = e % kSumColumns;
      const int64_t source = first + r;
      tile[r][c] = (source < rows && c < width) ? to_float(x[source * d + col + c]) : 0.0f;
    }
    if constexpr (!kSquares) {
      if (thread < kSumColumns) center_chunk[thread] = thread < width ? to_float(x[center * d + col + thread]) : 0.0f;
    }
    __syncthreads();
    for (int c = 0; c < width; ++c) {
      const double v = tile[thread][c];
      double w = v;
      if constexpr (!kSquares) w = center_chunk[c];
      sum = __dadd_rn(sum, __dmul_rn(v, w));
    }
    __syncthreads();
  }
  const int64_t row = first + thread;
  if (row < rows) out[row] = static_cast<Out>(sum);
}

template <typename T, bool kSquares, typename Out>
void launch_sequential_row_sums(const T* x, int64_t rows, int64_t d, int64_t center, Out* out,
                                cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t blocks = (rows + kSumRows - 1) / kSumRows;
  require(blocks <= kMaxGridX, "x: too many rows for the GPU kernels");
  sequential_row_sums_kernel<T, kSquares, Out>
      <<<static_cast<unsigned>(blocks), kSumRows, 0, stream>>>(x, rows, d, center, out);
  CLIPADAPT_CUDA_CHECK_LAUNCH();
}

// ---- group_by_cluster ----------------------------------------------------------------------

__global__ void find_first_invalid_kernel(const int64_t* assignments, int64_t n, int64_t clusters,
                                          unsigned long long* first) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t a = assignments[i];
    if (a < 0 || a >= clusters) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

__global__ void fill_row_ids_kernel(int64_t* values, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) values[i] = i;
}

// offsets[c] = the first position of a key >= c in the sorted keys, for c = 0 .. clusters
// (every key is < clusters, so offsets[clusters] = n).
__global__ void cluster_offsets_kernel(const int64_t* sorted_keys, int64_t n, int64_t clusters, int64_t* offsets) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c <= clusters; c += stride) {
    offsets[c] = first_not_below(sorted_keys, n, c);
  }
}

// ---- update_centroids ----------------------------------------------------------------------

constexpr int kMeanThreads = 128;

// centroids[cluster, j] = mean of column j over the cluster's rows, summed in `order` sequence
// in float32 (the CPU's loop). Grid: (clusters, column blocks); one thread per coordinate.
template <typename T>
__global__ void __launch_bounds__(kMeanThreads)
    cluster_means_kernel(const T* x, int64_t d, const int64_t* order, const int64_t* offsets, float* centroids) {
  const int64_t cluster = blockIdx.x;
  const int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= d) return;
  const int64_t begin = offsets[cluster], end = offsets[cluster + 1];
  float sum = 0.0f;
  for (int64_t e = begin; e < end; ++e) sum = __fadd_rn(sum, to_float(x[order[e] * d + j]));
  if (end > begin) sum = __fdiv_rn(sum, static_cast<float>(end - begin));
  centroids[cluster * d + j] = sum;
}

// Applies the splits (fresh, source) = splits[2s], splits[2s + 1] for s = 0, 1, ... in order.
// Coordinate j of a split only reads coordinate j, so one thread per coordinate replaying the
// whole sequence gives exactly the CPU's sequential result.
__global__ void replay_splits_kernel(float* centroids, int64_t d, const int64_t* splits, int64_t count) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < d; j += stride) {
    for (int64_t s = 0; s < count; ++s) {
      float* fresh = centroids + splits[2 * s] * d;
      float* source = centroids + splits[2 * s + 1] * d;
      const float value = source[j];
      fresh[j] = split_coordinate(value, j, true);
      source[j] = split_coordinate(value, j, false);
    }
  }
}

// Scales each row with a positive squared norm to unit norm (the CPU's normalize_rows).
__global__ void scale_rows_kernel(float* rows, int64_t count, int64_t d, const double* squared) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count * d; i += stride) {
    const double s = squared[i / d];
    if (s > 0.0) rows[i] = __fmul_rn(rows[i], static_cast<float>(__ddiv_rn(1.0, __dsqrt_rn(s))));
  }
}

template <typename T>
void launch_cluster_means(const UpdateProblem& p, cudaStream_t stream) {
  const int64_t clusters = p.offsets.rows - 1, d = p.x.cols;
  if (d == 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(kMeanThreads, (d + 31) / 32 * 32));
  const int64_t column_blocks = (d + threads - 1) / threads;
  require(clusters <= kMaxGridX, "n_clusters: too many clusters for the GPU update");
  require(column_blocks <= kMaxGridY, "x: too many columns for the GPU update");
  const dim3 grid(static_cast<unsigned>(clusters), static_cast<unsigned>(column_blocks));
  cluster_means_kernel<T><<<grid, threads, 0, stream>>>(p.x.as<const T>(), d, p.order.as<const int64_t>(),
                                                         p.offsets.as<const int64_t>(), p.centroids.as<float>());
  CLIPADAPT_CUDA_CHECK_LAUNCH();
}

// ---- k-means++ -----------------------------------------------------------------------------

constexpr int kBlockSumThreads = 256;

// The CPU's distances_to followed by its nearest = min(nearest, latest) (or nearest = latest
// for the first center), from the sequential dot products `dots` with row `center`.
__global__ void seeding_distances_kernel(const double* dots, const float* squared_norms, int64_t n, int64_t center,
                                         Metric metric, bool first, double* nearest) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const double center_squared = squared_norms[center];
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double distance = seeding_distance(dots[i], squared_norms[i], center_squared, metric);
    if (first || distance < nearest[i]) nearest[i] = distance;  // std::min(nearest, distance)
  }
}

// sums[b] = weights[b * 4096] + ... in row order (the CPU's block sums); one block per sum.
__global__ void __launch_bounds__(kBlockSumThreads)
    block_sums_kernel(const double* weights, int64_t n, double* sums) {
  __shared__ double staged[kSumBlockRows];  // 32 KiB: coalesced loads, then a sequential sum
  const int64_t first = int64_t(blockIdx.x) * kSumBlockRows;
  const int count = static_cast<int>(n - first < kSumBlockRows ? n - first : kSumBlockRows);
  for (int i = static_cast<int>(threadIdx.x); i < count; i += kBlockSumThreads) staged[i] = weights[first + i];
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (int i = 0; i < count; ++i) sum = __dadd_rn(sum, staged[i]);
    sums[blockIdx.x] = sum;
  }
}

// The CPU's sample_by_weight over device weights: block sums on the device, the walk
// (seeding_rules.h) on the host, which copies back only the chosen block's weights.
int64_t sample_by_weight(const double* weights, int64_t n, double* block_sums, std::vector<double>& host_sums,
                         std::vector<double>& host_weights, std::mt19937_64& rng, cudaStream_t stream) {
  const int64_t blocks = (n + kSumBlockRows - 1) / kSumBlockRows;
  block_sums_kernel<<<static_cast<unsigned>(blocks), kBlockSumThreads, 0, stream>>>(weights, n, block_sums);
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  copy_to_host(host_sums.data(), block_sums, blocks, stream);
  return pick_by_weight(host_sums.data(), blocks, n, unit_uniform(rng()), [&](int64_t b) {
    const int64_t first = b * kSumBlockRows;
    copy_to_host(host_weights.data(), weights + first, std::min(n, first + kSumBlockRows) - first, stream);
    return static_cast<const double*>(host_weights.data());
  });
}

template <typename T>
void kmeans_plus_plus_typed(const SeedingProblem& p, cudaStream_t stream) {
  const int64_t n = p.x.rows, d = p.x.cols, clusters = p.chosen.rows;
  const T* x = p.x.as<const T>();
  const int64_t blocks = (n + kSumBlockRows - 1) / kSumBlockRows;
  require(blocks <= kMaxGridX, "x: too many rows for the GPU k-means++");
  Scratch<float> squared_norms(n, stream);
  Scratch<double> dots(n, stream), nearest(n, stream), block_sums(blocks, stream);
  launch_sequential_row_sums<T, true, float>(x, n, d, 0, squared_norms.get(), stream);

  // Folds the distances to row `center` into `nearest`.
  auto add_center = [&](int64_t center, bool first) {
    launch_sequential_row_sums<T, false, double>(x, n, d, center, dots.get(), stream);
    seeding_distances_kernel<<<grid_for(n), kGridStrideThreads, 0, stream>>>(
        dots.get(), squared_norms.get(), n, center, p.metric, first, nearest.get());
    CLIPADAPT_CUDA_CHECK_LAUNCH();
  };

  std::mt19937_64 rng(p.seed);
  std::vector<int64_t> chosen(static_cast<size_t>(clusters));
  std::vector<double> host_sums(static_cast<size_t>(blocks)), host_weights(static_cast<size_t>(kSumBlockRows));
  chosen[0] = uniform_row(unit_uniform(rng()), n);
  if (clusters > 1) add_center(chosen[0], true);
  for (int64_t c = 1; c < clusters; ++c) {
    chosen[c] = sample_by_weight(nearest.get(), n, block_sums.get(), host_sums, host_weights, rng, stream);
    if (c + 1 < clusters) add_center(chosen[c], false);  // the last center's distances are never used
  }
  copy_to_device(p.chosen.as<int64_t>(), chosen.data(), clusters, stream);
}

// ---- IVF search ----------------------------------------------------------------------------

constexpr int kIvfThreads = 128;
constexpr int kIvfWarps = kIvfThreads / 32;

size_t ivf_shared_bytes(int k) { return size_t(kIvfWarps) * k * (sizeof(int64_t) + sizeof(float)); }

// One block per query; its warps scan the rows of the probed lists. Every key is the exact
// key of exact_score.h (the CPU's after its re-scoring), so no second pass is needed: the scan
// reads each row once anyway. Shared memory: kIvfWarps best-first lists (indices, then keys).
template <typename T>
__global__ void __launch_bounds__(kIvfThreads)
    ivf_search_kernel(const T* queries, const T* vectors, const int64_t* ids, const double* row_norms,
                      const int64_t* offsets, int64_t lists,
                      const int64_t* probes, int64_t nprobe, int64_t d, int k, Metric metric, float* out_scores,
                      int64_t* out_indices) {
  extern __shared__ __align__(16) unsigned char shared[];
  int64_t* list_indices = reinterpret_cast<int64_t*>(shared);
  float* list_keys = reinterpret_cast<float*>(list_indices + kIvfWarps * k);

  const int64_t q = blockIdx.x;
  const int thread = static_cast<int>(threadIdx.x);
  const int lane = thread % 32, warp = thread / 32;
  for (int s = thread; s < kIvfWarps * k; s += kIvfThreads) {
    list_keys[s] = -INFINITY;
    list_indices[s] = knn::kEmptyIndex;
  }
  __syncthreads();
  const auto query = knn::ElementsOf<T>::view(queries + q * d);
  const double query_squared = knn::warp_canonical_dot(query, query, d, lane);
  float* keys = list_keys + warp * k;
  int64_t* indices = list_indices + warp * k;
  const int64_t* probe_row = probes + q * nprobe;
  for (int64_t probe = 0; probe < nprobe; ++probe) {
    if (!scans_probe(probe_row, probe, lists)) continue;
    const int64_t list = probe_row[probe], end = offsets[list + 1];
    for (int64_t e = offsets[list] + warp; e < end; e += kIvfWarps) {  // warp-uniform loop
      const double dot = knn::warp_canonical_dot(query, knn::ElementsOf<T>::view(vectors + e * d), d, lane);
      const float key = knn::exact_key(dot, query_squared, row_norms[e], metric);
      if (key == key) knn::warp_insert(keys, indices, k, key, ids[e], lane);
    }
  }
  __syncthreads();
  if (warp == 0) {  // merge the other warps' lists into warp 0's
    for (int other = 1; other < kIvfWarps; ++other)
      for (int s = 0; s < k; ++s)
        knn::warp_insert(list_keys, list_indices, k, list_keys[other * k + s], list_indices[other * k + s], lane);
  }
  __syncthreads();
  for (int s = thread; s < k; s += kIvfThreads) {
    out_scores[q * k + s] = knn::score_from_key(list_keys[s], metric);
    out_indices[q * k + s] = knn::reported_index(list_indices[s]);
  }
}

template <typename T>
void ivf_search_typed(const IvfSearchProblem& p, cudaStream_t stream) {
  const int64_t nq = p.queries.rows, d = p.queries.cols;
  const int k = static_cast<int>(p.k);
  require(nq <= kMaxGridX, "queries: too many queries for one GPU IVF search; search in batches");
  const size_t shared_bytes = ivf_shared_bytes(k);
  int device = 0, max_shared = 0;
  CLIPADAPT_CUDA_CHECK(cudaGetDevice(&device));
  CLIPADAPT_CUDA_CHECK(cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  require(shared_bytes <= static_cast<size_t>(max_shared),
          "k: " + std::to_string(k) + " is too large for the GPU IVF search on this device (" +
              std::to_string(max_shared) + " bytes of shared memory per block); lower k or search on the CPU");
  CLIPADAPT_CUDA_CHECK(cudaFuncSetAttribute(ivf_search_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(shared_bytes)));
  ivf_search_kernel<T><<<static_cast<unsigned>(nq), kIvfThreads, shared_bytes, stream>>>(
      p.queries.as<const T>(), p.vectors.as<const T>(), p.ids.as<const int64_t>(), p.row_norms.as<const double>(),
      p.offsets.as<const int64_t>(),
      p.offsets.rows - 1, p.probes.as<const int64_t>(), p.probes.cols, d, k, p.metric, p.scores.as<float>(),
      p.indices.as<int64_t>());
  CLIPADAPT_CUDA_CHECK_LAUNCH();
}

[[noreturn]] void unsupported_features(DType dtype, const char* name) {
  throw UnsupportedType(std::string(name) + ": dtype " + dtype_name(dtype) +
                        " is not supported; use float32, float16 or bfloat16");
}

}  // namespace

void group_by_cluster_cuda(const GroupProblem& p) {
  validate(p);
  DeviceGuard guard(p.assignments.device.index);
  auto stream = static_cast<cudaStream_t>(p.stream);
  const int64_t n = p.assignments.rows, clusters = p.clusters;
  const auto* assignments = p.assignments.as<const int64_t>();

  Scratch<unsigned long long> first_invalid(1, stream);
  CLIPADAPT_CUDA_CHECK(cudaMemsetAsync(first_invalid.get(), 0xff, sizeof(unsigned long long), stream));
  find_first_invalid_kernel<<<grid_for(n), kGridStrideThreads, 0, stream>>>(assignments, n, clusters,
                                                                             first_invalid.get());
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  unsigned long long host_first = 0;
  copy_to_host(&host_first, first_invalid.get(), 1, stream);
  if (host_first != std::numeric_limits<unsigned long long>::max()) {
    const auto row = static_cast<int64_t>(host_first);
    int64_t entry = 0;
    copy_to_host(&entry, assignments + row, 1, stream);
    throw InvalidArgument("assignments: entry " + std::to_string(entry) + " at row " + std::to_string(row) +
                          " is outside [0, n_clusters)");
  }

  Scratch<int64_t> row_ids(n, stream), sorted_keys(n, stream);
  if (n > 0) {
    fill_row_ids_kernel<<<grid_for(n), kGridStrideThreads, 0, stream>>>(row_ids.get(), n);
    CLIPADAPT_CUDA_CHECK_LAUNCH();
    // Every key lies in [0, clusters), so its bits above end_bit are zero: sorting on bits
    // [0, end_bit) orders the keys fully, in fewer passes. The radix sort is stable, so each
    // cluster's rows stay in increasing row order.
    int end_bit = 1;
    while (end_bit < 63 && (int64_t(1) << end_bit) < clusters) ++end_bit;
    size_t temp_bytes = 0;
    CLIPADAPT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, assignments, sorted_keys.get(),
                                                         row_ids.get(), p.order.as<int64_t>(), n, 0, end_bit,
                                                         stream));
    Scratch<unsigned char> temp(static_cast<int64_t>(temp_bytes), stream);
    CLIPADAPT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, assignments, sorted_keys.get(),
                                                         row_ids.get(), p.order.as<int64_t>(), n, 0, end_bit,
                                                         stream));
  }
  cluster_offsets_kernel<<<grid_for(clusters + 1), kGridStrideThreads, 0, stream>>>(sorted_keys.get(), n, clusters,
                                                                                    p.offsets.as<int64_t>());
  CLIPADAPT_CUDA_CHECK_LAUNCH();
}

namespace {

// The CPU's finish_centroids: the split plan (split_rules.h) from the host counts, the centroid
// halves replayed on the device, unit rows; the counts after splitting go to device_counts.
int64_t finish_on_device(float* centroids, int64_t clusters, int64_t d, std::vector<int64_t>& counts,
                         int64_t* device_counts, bool spherical, cudaStream_t stream) {
  std::vector<int64_t> splits;  // (fresh, source) pairs in order, flattened
  for (const auto& [empty, largest] : plan_splits(counts.data(), clusters)) {
    splits.push_back(empty);
    splits.push_back(largest);
  }
  const auto split = static_cast<int64_t>(splits.size() / 2);
  if (split > 0 && d > 0) {
    Scratch<int64_t> device_splits(2 * split, stream);
    copy_to_device(device_splits.get(), splits.data(), 2 * split, stream);
    replay_splits_kernel<<<grid_for(d), kGridStrideThreads, 0, stream>>>(centroids, d, device_splits.get(), split);
    CLIPADAPT_CUDA_CHECK_LAUNCH();
  }
  if (spherical && d > 0) {
    Scratch<double> squared(clusters, stream);
    launch_sequential_row_sums<float, true, double>(centroids, clusters, d, 0, squared.get(), stream);
    scale_rows_kernel<<<grid_for(clusters * d), kGridStrideThreads, 0, stream>>>(centroids, clusters, d,
                                                                                 squared.get());
    CLIPADAPT_CUDA_CHECK_LAUNCH();
  }
  copy_to_device(device_counts, counts.data(), clusters, stream);
  return split;
}

}  // namespace

int64_t update_centroids_cuda(const UpdateProblem& p) {
  validate(p);
  DeviceGuard guard(p.x.device.index);
  auto stream = static_cast<cudaStream_t>(p.stream);
  const int64_t clusters = p.offsets.rows - 1, n = p.x.rows, d = p.x.cols;
  float* centroids = p.centroids.as<float>();

  // The counts decide the splits, so the offsets come to the host first (checked, since a bad
  // offset would make the device read out of bounds).
  std::vector<int64_t> offsets(static_cast<size_t>(clusters + 1));
  copy_to_host(offsets.data(), p.offsets.as<const int64_t>(), clusters + 1, stream);
  bool ordered = offsets[0] == 0 && offsets[clusters] == n;
  for (int64_t c = 0; c < clusters; ++c) ordered = ordered && offsets[c] <= offsets[c + 1];
  require(ordered, "offsets: must rise from 0 to n (use group_by_cluster)");

  switch (p.x.dtype) {
    case DType::Float32: launch_cluster_means<float>(p, stream); break;
    case DType::Float16: launch_cluster_means<__half>(p, stream); break;
    case DType::BFloat16: launch_cluster_means<__nv_bfloat16>(p, stream); break;
    default: unsupported_features(p.x.dtype, "x");
  }

  std::vector<int64_t> counts(static_cast<size_t>(clusters));
  for (int64_t c = 0; c < clusters; ++c) counts[c] = offsets[c + 1] - offsets[c];
  return finish_on_device(centroids, clusters, d, counts, p.counts.as<int64_t>(), p.spherical, stream);
}

int64_t finish_centroids_cuda(const FinishProblem& p) {
  validate(p);
  DeviceGuard guard(p.centroids.device.index);
  auto stream = static_cast<cudaStream_t>(p.stream);
  const int64_t clusters = p.centroids.rows;
  std::vector<int64_t> counts(static_cast<size_t>(clusters));
  copy_to_host(counts.data(), p.counts.as<const int64_t>(), clusters, stream);
  require(std::all_of(counts.begin(), counts.end(), [](int64_t c) { return c >= 0; }), "counts: must be >= 0");
  return finish_on_device(p.centroids.as<float>(), clusters, p.centroids.cols, counts, p.counts.as<int64_t>(),
                          p.spherical, stream);
}

void kmeans_plus_plus_cuda(const SeedingProblem& p) {
  validate(p);
  DeviceGuard guard(p.x.device.index);
  auto stream = static_cast<cudaStream_t>(p.stream);
  switch (p.x.dtype) {
    case DType::Float32: kmeans_plus_plus_typed<float>(p, stream); break;
    case DType::Float16: kmeans_plus_plus_typed<__half>(p, stream); break;
    case DType::BFloat16: kmeans_plus_plus_typed<__nv_bfloat16>(p, stream); break;
    default: unsupported_features(p.x.dtype, "x");
  }
}

void ivf_search_cuda(const IvfSearchProblem& p) {
  validate(p);
  require(p.k <= knn::kMaxFusedK, "k: the GPU IVF search supports k <= 128");
  if (p.queries.rows == 0) return;
  DeviceGuard guard(p.queries.device.index);
  auto stream = static_cast<cudaStream_t>(p.stream);
  switch (p.queries.dtype) {
    case DType::Float32: ivf_search_typed<float>(p, stream); break;
    case DType::Float16: ivf_search_typed<__half>(p, stream); break;
    case DType::BFloat16: ivf_search_typed<__nv_bfloat16>(p, stream); break;
    default: unsupported_features(p.queries.dtype, "queries");
  }
}

}  // namespace clipadapt::kmeans
