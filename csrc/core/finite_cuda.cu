#include <cuda_runtime.h>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "core/finite.h"

namespace clipadapt {
namespace {

template <typename Bits>
__global__ void flag_nonfinite(const Bits* values, int64_t count, Bits exponent_mask, int* flag) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    if ((values[i] & exponent_mask) == exponent_mask) {
      *flag = 1;  // benign race: every writer stores the same value
      return;
    }
  }
}

template <typename Bits>
bool run_flag(const Matrix& values, Bits mask, cudaStream_t stream) {
  Scratch<int> scratch(1, stream);
  int* flag = scratch.get();
  CLIPADAPT_CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), stream));
  const int threads = 256;
  const int64_t wanted = (values.size() + threads - 1) / threads;
  const int blocks = static_cast<int>(wanted < 4096 ? (wanted > 0 ? wanted : 1) : 4096);
  flag_nonfinite<Bits><<<blocks, threads, 0, stream>>>(values.as<const Bits>(), values.size(), mask, flag);
  CLIPADAPT_CUDA_CHECK_LAUNCH();
  int host_flag = 0;
  CLIPADAPT_CUDA_CHECK(cudaMemcpyAsync(&host_flag, flag, sizeof(int), cudaMemcpyDeviceToHost, stream));
  CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host_flag != 0;
}

}  // namespace

bool has_nonfinite_cuda(const Matrix& values, void* stream_handle) {
  DeviceGuard guard(values.device.index);  // the array's device, whatever device is current
  auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (values.dtype) {
    case DType::Float32: return run_flag<uint32_t>(values, 0x7f800000u, stream);
    case DType::Float16: return run_flag<uint16_t>(values, uint16_t(0x7c00u), stream);
    case DType::BFloat16: return run_flag<uint16_t>(values, uint16_t(0x7f80u), stream);
    case DType::Float64: return run_flag<uint64_t>(values, uint64_t(0x7ff0000000000000ull), stream);
    case DType::Int64: return false;
  }
  return false;
}

}  // namespace clipadapt
