// CUDA SpMM: out = scale_y * y + scale_ax * (A x) for CSR A and row-major x, y, out.
//
// One warp per row, its lanes over the C columns (32 at a time). Each output element is the
// sum over the row's nonzeros in storage order, accumulated in T by one thread, the order of
// spmm_cpu, so the result is deterministic (it may differ from the CPU in the last bits:
// the GPU contracts multiply-adds into FMAs).
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {
namespace {

constexpr int kWarp = 32;
static_assert(kGridStrideThreads % kWarp == 0, "blocks must hold whole warps");

// y may alias out (never x): each thread reads y[i, c] before it writes out[i, c], and no
// other thread touches that element. y is null when absent.
template <typename T>
__global__ void spmm_kernel(const int64_t* indptr, const int64_t* indices, const T* values, const T* x, const T* y,
                            T* out, int64_t rows, int64_t columns, T scale_ax, T scale_y) {
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp; row < rows; row += warps) {
    const int64_t begin = indptr[row], end = indptr[row + 1];
    for (int64_t c = lane; c < columns; c += kWarp) {
      T sum = T(0);
      for (int64_t e = begin; e < end; ++e) sum += values[e] * x[indices[e] * columns + c];
      const int64_t at = row * columns + c;
      out[at] = (y != nullptr ? scale_y * y[at] : T(0)) + scale_ax * sum;
    }
  }
}

template <typename T>
void launch(const SpmmProblem& p) {
  const int64_t rows = p.a.rows, columns = p.x.cols;
  if (rows == 0 || columns == 0) return;
  auto stream = static_cast<cudaStream_t>(p.stream);
  const T* y = p.y.data != nullptr ? p.y.as<const T>() : nullptr;
  // grid_for sizes a grid-stride loop over threads; a row takes a warp of them.
  spmm_kernel<T><<<grid_for(rows * kWarp), kGridStrideThreads, 0, stream>>>(
      p.a.indptr.as<const int64_t>(), p.a.indices.as<const int64_t>(), p.a.values.as<const T>(), p.x.as<const T>(),
      y, p.out.as<T>(), rows, columns, static_cast<T>(p.scale_ax), static_cast<T>(p.scale_y));
  CLIPADAPT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void spmm_cuda(const SpmmProblem& p) {
  validate(p);
  DeviceGuard guard(p.a.indptr.device.index);
  if (p.a.values.dtype == DType::Float64) {
    launch<double>(p);
  } else {
    launch<float>(p);
  }
}

}  // namespace clipadapt::sparse
