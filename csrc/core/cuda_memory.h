// Small host-side helpers shared by the CUDA kernels: the current-device guard, stream-ordered
// scratch memory and the grid size of a grid-stride loop. Include from .cu files only.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"
#include "core/device.h"

namespace clipadapt {

// Whether `device`'s primary context exists (true when that cannot be asked): making a device
// current creates its context, hundreds of MB, so a guard only goes back to a device that has one.
bool primary_context_active(int device);

// Makes `device` the current CUDA device for the guard's lifetime. Nothing is set when it is
// current already; otherwise the previous device is restored only if it has a context (as
// PyTorch's MaybeExchangeDevice), so work on cuda:1 never creates a context on cuda:0. Errors
// on restore are ignored: a destructor must not throw.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    require_supported_device(device);
    CLIPADAPT_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device == previous_) return;
    CLIPADAPT_CUDA_CHECK(cudaSetDevice(device));
    restore_ = primary_context_active(previous_);
  }
  ~DeviceGuard() {
    if (restore_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool restore_ = false;
};

// clipadapt's stream-ordered memory pool on the current device: freed scratch stays cached in
// it up to kScratchPoolKeepBytes across synchronisations (the default pool returns everything
// to the driver at each one), so repeated calls do not pay for fresh allocations.
constexpr uint64_t kScratchPoolKeepBytes = uint64_t(1) << 30;
cudaMemPool_t scratch_pool();

// Stream-ordered scratch memory of `count` elements of T (at least one is allocated, so get()
// is never null), allocated from scratch_pool() and freed on the same stream: work queued on
// that stream before the destructor runs may still use it. The memory is uninitialised.
template <typename T>
class Scratch {
 public:
  Scratch(int64_t count, cudaStream_t stream) : stream_(stream) {
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T);
    CLIPADAPT_CUDA_CHECK(cudaMallocFromPoolAsync(reinterpret_cast<void**>(&data_), bytes, scratch_pool(), stream));
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
