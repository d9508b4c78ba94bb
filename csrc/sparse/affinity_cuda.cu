// CUDA affinity: the same CSR as affinity_cpu, built on the device by sort + reduce.
//
//   1. every neighbour index must lie in [0, n) (a device flag, read back);
//   2. the 2 n k COO entries of A and A^T: slot e < n k is the out-edge (i, j) of edge e = i k + s,
//      slot n k + e its in-edge (j, i), both weighted w_e = edge_weight(cos_e), keyed row * n + col;
//      self edges get the key n * n, which sorts last and is dropped;
//   3. a stable radix sort by key: equal keys keep their slot order, which is the order in which
//      affinity_cpu sums duplicates (out-edges in slot order, then in-edges by source);
//   4. a reduce-by-key sums each run of equal keys (in double; run-to-run deterministic on one
//      device, as CUB documents) into the unique entries of W / scale; only nnz is read back;
//   5. indptr by a binary search per row, degrees by one thread per row summing its entries in
//      column order, then the values (normalised or not) and the column indices.
// Only scalars (the range flag and nnz) reach the host.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_reduce.cuh>
#include <cuda/std/functional>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "core/errors.h"
#include "core/search_rules.h"
#include "sparse/affinity_rules.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {
namespace {

// Keys row * n + col and the sentinel n * n must fit in int64 with room to spare.
constexpr int64_t kMaxNodes = (int64_t(1) << 31) - 1;

__global__ void flag_out_of_range(const int64_t* neighbors, int64_t count, int64_t n, int* flag) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride) {
    if (neighbors[e] < 0 || neighbors[e] >= n) *flag = 1;  // benign race: every writer stores 1
  }
}

__global__ void build_entries(const int64_t* neighbors, const float* similarities, int64_t n, int64_t k,
                              AffinityKernel kernel, double gamma, int64_t* keys, double* weights) {
  const int64_t count = n * k;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride) {
    const int64_t i = e / k, j = neighbors[e];
    const double weight = edge_weight(similarities[e], kernel, gamma);
    keys[e] = edge_key(i, j, n);
    weights[e] = weight;
    keys[count + e] = edge_key(j, i, n);
    weights[count + e] = weight;
  }
}

// nnz = the number of runs, less one if the last run is the self-edge sentinel.
__global__ void count_entries(const int64_t* unique_keys, const int64_t* runs, int64_t sentinel, int64_t* nnz) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const int64_t count = *runs;
  *nnz = count > 0 && unique_keys[count - 1] == sentinel ? count - 1 : count;
}

// indptr[row] = the first position whose key is >= row * n, for row in [0, n]; the keys are
// sorted and all < n * n, so indptr[n] = nnz.
__global__ void row_pointers(const int64_t* keys, int64_t nnz, int64_t n, int64_t* indptr) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; row <= n; row += stride) {
    indptr[row] = first_not_below(keys, nnz, row * n);
  }
}

// degrees[row] = sum of the row's weights of W (sums * scale) in column order, as affinity_cpu.
__global__ void row_degrees(const int64_t* indptr, const double* sums, int64_t n, double scale, double* degrees) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; row < n; row += stride) {
    double degree = 0.0;
    for (int64_t t = indptr[row]; t < indptr[row + 1]; ++t) degree += sums[t] * scale;
    degrees[row] = degree;
  }
}

// Turns each key into its column index (in place: entry t is read and written by one thread)
// and writes the entry's value.
template <typename Value>
__global__ void write_entries(const double* sums, int64_t nnz, int64_t n, double scale, bool normalize,
                              const double* degrees, int64_t* keys_then_indices, Value* values) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < nnz; t += stride) {
    const int64_t key = keys_then_indices[t];
    const int64_t row = edge_row(key, n), column = edge_column(key, n);
    const double weight = sums[t] * scale;
    values[t] = static_cast<Value>(normalize ? normalized_weight(weight, degrees[row], degrees[column]) : weight);
    keys_then_indices[t] = column;
  }
}

void check_neighbor_range(const int64_t* neighbors, int64_t count, int64_t n, cudaStream_t stream) {
  Scratch<int> flag(1, stream);
  CLIPADAPT_CUDA_CHECK(cudaMemsetAsync(flag.get(), 0, sizeof(int), stream));
  flag_out_of_range<<<grid_for(count), kGridStrideThreads, 0, stream>>>(neighbors, count, n, flag.get());
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  int host_flag = 0;
  CLIPADAPT_CUDA_CHECK(cudaMemcpyAsync(&host_flag, flag.get(), sizeof(int), cudaMemcpyDeviceToHost, stream));
  CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream));
  require(host_flag == 0, "graph.indices: entries must lie in [0, n); a graph built with check_finite=False from NaN "
                          "features holds -1: rebuild it from finite features");
}

// The number of low bits that hold every key in [0, largest].
int key_bits(int64_t largest) {
  int bits = 0;
  while (bits < 63 && (largest >> bits) != 0) ++bits;
  return std::max(bits, 1);
}

}  // namespace

int64_t affinity_cuda(const AffinityProblem& p) {
  validate(p);
  const int64_t n = p.neighbors.rows, k = p.neighbors.cols;
  DeviceGuard guard(p.neighbors.device.index);
  auto stream = static_cast<cudaStream_t>(p.stream);
  auto* indptr = p.out.indptr.as<int64_t>();
  auto* degrees = p.degrees.as<double>();
  if (n == 0 || k == 0) {  // no edges: every row empty, every degree 0
    CLIPADAPT_CUDA_CHECK(cudaMemsetAsync(indptr, 0, static_cast<size_t>(n + 1) * sizeof(int64_t), stream));
    if (n > 0) CLIPADAPT_CUDA_CHECK(cudaMemsetAsync(degrees, 0, static_cast<size_t>(n) * sizeof(double), stream));
    return 0;
  }
  require(n <= kMaxNodes, "graph: the CUDA affinity supports at most 2^31 - 1 nodes, got " + std::to_string(n));
  const auto* neighbors = p.neighbors.as<const int64_t>();
  check_neighbor_range(neighbors, n * k, n, stream);

  const int64_t edges = n * k, entries = 2 * edges, sentinel = edge_key(0, 0, n);  // every self edge's key
  // out.indices (capacity >= 2 n k) first holds the unsorted COO keys, then, once the sort has
  // consumed them, the unique keys, which write_entries finally turns into column indices.
  int64_t* keys = p.out.indices.as<int64_t>();
  Scratch<double> weights(entries, stream);  // unsorted weights, then the run sums
  Scratch<int64_t> sorted_keys(entries, stream);
  Scratch<double> sorted_weights(entries, stream);
  Scratch<int64_t> counts(2, stream);  // [0]: runs, [1]: nnz
  int64_t* runs = counts.get();
  int64_t* nnz_device = counts.get() + 1;

  build_entries<<<grid_for(edges), kGridStrideThreads, 0, stream>>>(
      neighbors, p.similarities.as<const float>(), n, k, p.kernel, p.gamma, keys, weights.get());
  CLIPADAPT_CUDA_CHECK_LAUNCH();

  // Keys lie in [0, n * n] (non-negative, so the sign bit CUB flips for signed keys is the same
  // for all of them): sorting on the low key_bits bits orders them fully.
  const int end_bit = key_bits(sentinel);
  const auto plus = ::cuda::std::plus<double>{};
  size_t sort_bytes = 0, reduce_bytes = 0;
  CLIPADAPT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys, sorted_keys.get(), weights.get(),
                                                       sorted_weights.get(), entries, 0, end_bit, stream));
  CLIPADAPT_CUDA_CHECK(cub::DeviceReduce::ReduceByKey(nullptr, reduce_bytes, sorted_keys.get(), keys,
                                                      sorted_weights.get(), weights.get(), runs, plus, entries,
                                                      stream));
  Scratch<unsigned char> temp(static_cast<int64_t>(std::max(sort_bytes, reduce_bytes)), stream);
  CLIPADAPT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), sort_bytes, keys, sorted_keys.get(),
                                                       weights.get(), sorted_weights.get(), entries, 0, end_bit,
                                                       stream));
  // Outputs (keys, weights) do not overlap the inputs (sorted_keys, sorted_weights), as CUB asks.
  CLIPADAPT_CUDA_CHECK(cub::DeviceReduce::ReduceByKey(temp.get(), reduce_bytes, sorted_keys.get(), keys,
                                                      sorted_weights.get(), weights.get(), runs, plus, entries,
                                                      stream));
  count_entries<<<1, 1, 0, stream>>>(keys, runs, sentinel, nnz_device);
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  int64_t nnz = 0;
  CLIPADAPT_CUDA_CHECK(cudaMemcpyAsync(&nnz, nnz_device, sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
  CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream));

  const double scale = symmetrize_scale(p.symmetrize);
  row_pointers<<<grid_for(n + 1), kGridStrideThreads, 0, stream>>>(keys, nnz, n, indptr);
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  row_degrees<<<grid_for(n), kGridStrideThreads, 0, stream>>>(indptr, weights.get(), n, scale, degrees);
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  if (p.out.values.dtype == DType::Float64) {
    write_entries<double><<<grid_for(nnz), kGridStrideThreads, 0, stream>>>(
        weights.get(), nnz, n, scale, p.normalize, degrees, keys, p.out.values.as<double>());
  } else {
    write_entries<float><<<grid_for(nnz), kGridStrideThreads, 0, stream>>>(
        weights.get(), nnz, n, scale, p.normalize, degrees, keys, p.out.values.as<float>());
  }
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  return nnz;
}

}  // namespace clipadapt::sparse
