// CUDA error checking used after every runtime call and kernel launch.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/errors.h"

namespace clipadapt {

inline void throw_cuda_error(cudaError_t status, const char* what, const char* file, int line) {
  std::string message = std::string(what) + " failed: " + cudaGetErrorString(status) + " (" +
                        file + ":" + std::to_string(line) + ")";
  if (status == cudaErrorMemoryAllocation) {
    throw OutOfMemory(message + "; reduce the batch (fewer queries or rows) or free GPU memory");
  }
  throw DeviceError(message);
}

}  // namespace clipadapt

#define CLIPADAPT_CUDA_CHECK(call)                                              \
  do {                                                                          \
    cudaError_t clipadapt_status_ = (call);                                     \
    if (clipadapt_status_ != cudaSuccess) {                                     \
      (void)cudaGetLastError(); /* clear the sticky-free error state */         \
      ::clipadapt::throw_cuda_error(clipadapt_status_, #call, __FILE__, __LINE__); \
    }                                                                           \
  } while (0)

// After a kernel launch: a launch-configuration error shows up at once.
#define CLIPADAPT_CUDA_CHECK_LAUNCH() CLIPADAPT_CUDA_CHECK(cudaGetLastError())
