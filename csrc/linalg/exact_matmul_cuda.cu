// CUDA exact_matmul: every entry is the canonical dot itself, one warp per entry
// (warp_canonical_dot: the CPU's canonical_dot in the warp's lanes), rounded with the CPU's
// rules (exact_matmul_rules.h). The CPU kernel is its test oracle. b is first copied to its
// transpose, so that each warp reads a row of a and a row of b^T, contiguously.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "knn/exact_score_cuda.cuh"
#include "linalg/exact_matmul.h"
#include "linalg/exact_matmul_rules.h"

namespace clipadapt::linalg {
namespace {

constexpr int kWarp = 32;
static_assert(kGridStrideThreads % kWarp == 0, "blocks must hold whole warps");

// b_rows[j, k] = b[k, j] for b [d, n].
template <typename T>
__global__ void transpose_kernel(const T* b, int64_t d, int64_t n, T* b_rows) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t at = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; at < d * n; at += stride) {
    b_rows[(at % n) * d + at / n] = b[at];
  }
}

// One warp per entry of out [m, n], grid-stride over the entries.
template <typename T, typename Output>
__global__ void canonical_product_kernel(const T* a, const T* b_rows, int64_t m, int64_t n, int64_t d,
                                         typename Output::Bits* out) {
  using Elements = knn::ElementsOf<T>;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t entry = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp; entry < m * n; entry += warps) {
    const int64_t i = entry / n, j = entry % n;
    const double dot = knn::warp_canonical_dot(Elements::view(a + i * d), Elements::view(b_rows + j * d), d, lane);
    if (lane == 0) out[entry] = Output::round(dot);
  }
}

template <typename T, typename Output>
int64_t launch(const ExactMatmulProblem& p) {
  const int64_t m = p.a.rows, d = p.a.cols, n = p.b.cols;
  auto stream = static_cast<cudaStream_t>(p.stream);
  Scratch<T> b_rows(n * d, stream);
  if (d > 0) {
    transpose_kernel<T><<<grid_for(n * d), kGridStrideThreads, 0, stream>>>(p.b.as<const T>(), d, n, b_rows.get());
    CLIPADAPT_CUDA_CHECK_LAUNCH();
  }
  // grid_for sizes a grid-stride loop over threads; an entry takes a warp of them.
  canonical_product_kernel<T, Output><<<grid_for(m * n * kWarp), kGridStrideThreads, 0, stream>>>(
      p.a.as<const T>(), b_rows.get(), m, n, d, p.out.as<typename Output::Bits>());
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  return m * n;
}

}  // namespace

int64_t exact_matmul_cuda(const ExactMatmulProblem& p) {
  validate(p);
  if (p.a.rows == 0 || p.b.cols == 0) return 0;
  DeviceGuard guard(p.a.device.index);
  switch (p.a.dtype) {
    case DType::Float16: return launch<__half, Float16Output>(p);
    case DType::BFloat16: return launch<__nv_bfloat16, BFloat16Output>(p);
    default: return launch<float, Float32Output>(p);
  }
}

}  // namespace clipadapt::linalg
