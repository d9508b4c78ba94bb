// Exactly rounded matrix product: the entry point shared by the CPU and CUDA kernels.
//
// out[i, j] is the canonical float64 dot product (knn/exact_score.h: 32-lane order, products
// exact in float64) of row i of a and column j of b, rounded once, to nearest even, to the
// output dtype. So every entry is a function of that row and that column alone: the same bits
// whatever the BLAS kernel, thread count, batching or device.
#pragma once
#include <cstdint>

#include "core/array.h"

namespace clipadapt::linalg {

struct ExactMatmulProblem {
  Matrix a;    // [M, D] float32 / float16 / bfloat16
  Matrix b;    // [D, N], same dtype and device as a
  Matrix out;  // out: [M, N], same dtype and device as a
  void* stream = nullptr;  // CUDA stream (cudaStream_t) for device inputs
};

// Checks dtypes and shapes (throws UnsupportedType / InvalidArgument naming the argument).
void validate(const ExactMatmulProblem& problem);

// Each returns how many entries it computed with the canonical dot itself: on the CPU those
// whose fast float64 estimate could round either way (rare but for exact ties), on the GPU all.
int64_t exact_matmul_cpu(const ExactMatmulProblem& problem);
int64_t exact_matmul_cuda(const ExactMatmulProblem& problem);

}  // namespace clipadapt::linalg
