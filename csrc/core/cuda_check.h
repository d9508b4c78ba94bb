// CUDA error checking used after every runtime call and kernel launch.
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
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

// CLIPADAPT_CUDA_SYNC=1 in the environment: every launch is followed by a synchronisation and
// a check, so that an asynchronous fault is blamed on the kernel that caused it (slow; for
// debugging and the sanitizer runs).
inline bool synchronize_every_launch() {
  static const bool enabled = [] {
    const char* value = std::getenv("CLIPADAPT_CUDA_SYNC");
    return value != nullptr && value[0] != '\0' && value[0] != '0';
  }();
  return enabled;
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

// After a kernel launch: a launch-configuration error shows up at once (and, with
// CLIPADAPT_CUDA_SYNC=1, an error the kernel raised while running).
#define CLIPADAPT_CUDA_CHECK_LAUNCH()                                         \
  do {                                                                        \
    CLIPADAPT_CUDA_CHECK(cudaGetLastError());                                 \
    if (::clipadapt::synchronize_every_launch()) CLIPADAPT_CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)
