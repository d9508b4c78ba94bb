// What CUDA devices this process can use. Without a driver (or in a CPU-only build)
// cudaGetDeviceCount fails: that is reported as "no device", never as an error.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace clipadapt {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int compute_capability_major = 0;
  int compute_capability_minor = 0;
  int multiprocessors = 0;
  int64_t total_memory_bytes = 0;
  int64_t shared_memory_per_block_optin = 0;
};

bool cuda_compiled();
int cuda_device_count();
std::vector<CudaDeviceInfo> cuda_devices();
// The CUDA runtime version this extension was built with (e.g. 13000), 0 without CUDA.
int cuda_runtime_version();

}  // namespace clipadapt
