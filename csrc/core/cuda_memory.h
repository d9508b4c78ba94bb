// Small host-side helpers shared by the CUDA kernels: the current-device guard, stream-ordered
// scratch memory and the grid size of a grid-stride loop. Include from .cu files only.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"

namespace clipadapt {

// Makes `device` the current CUDA device for the guard's lifetime, then restores the previous
// one (errors on restore are ignored: a destructor must not throw).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    CLIPADAPT_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) CLIPADAPT_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { (void)cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Stream-ordered scratch memory of `count` elements of T (at least one is allocated, so get()
// is never null), allocated with cudaMallocAsync and freed with cudaFreeAsync on the same
// stream: work queued on that stream before the destructor runs may still use it. The memory
// is uninitialised.
template <typename T>
class Scratch {
 public:
  Scratch(int64_t count, cudaStream_t stream) : stream_(stream) {
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T);
    CLIPADAPT_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&data_), bytes, stream));
  }
  ~Scratch() { (void)cudaFreeAsync(data_, stream_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
  cudaStream_t stream_;
};

// Threads per block assumed by grid_for.
constexpr int kGridStrideThreads = 256;

// Blocks of kGridStrideThreads threads for a grid-stride loop over `work` items: enough to give
// each item a thread, capped at 65535 (the loop covers the rest), and at least 1.
inline int grid_for(int64_t work) {
  const int64_t blocks = (work + kGridStrideThreads - 1) / kGridStrideThreads;
  return static_cast<int>(std::clamp<int64_t>(blocks, 1, 65535));
}

}  // namespace clipadapt
