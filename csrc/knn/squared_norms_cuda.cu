// CUDA canonical squared norms of rows: one warp per row (exact_score_cuda.cuh), the CPU's
// squared_norms_cpu as its oracle.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "core/errors.h"
#include "knn/exact_score_cuda.cuh"
#include "knn/knn.h"

namespace clipadapt::knn {

void squared_norms_cuda(const SquaredNormsProblem& p) {
  validate(p);
  if (p.x.rows == 0) return;
  DeviceGuard guard(p.x.device.index);
  auto stream = static_cast<cudaStream_t>(p.stream);
  auto* out = p.out.as<double>();
  switch (p.x.dtype) {
    case DType::Float32: launch_canonical_norms(p.x.as<const float>(), p.x.rows, p.x.cols, out, stream); break;
    case DType::Float16: launch_canonical_norms(p.x.as<const __half>(), p.x.rows, p.x.cols, out, stream); break;
    case DType::BFloat16:
      launch_canonical_norms(p.x.as<const __nv_bfloat16>(), p.x.rows, p.x.cols, out, stream);
      break;
    default: throw UnsupportedType("x: rows must be float32, float16 or bfloat16");
  }
}

}  // namespace clipadapt::knn
