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
  bool supported = false;  // this build holds code the device can run (its SASS, or PTX to JIT)
};

bool cuda_compiled();
int cuda_device_count();
std::vector<CudaDeviceInfo> cuda_devices();
// Whether this build's kernels can run on device `index` (cached per device).
bool cuda_device_supported(int index);
// Throws DeviceError, naming the device, its architecture and the fix, when they cannot.
void require_supported_device(int index);
// The CUDA runtime version this extension was built with (e.g. 13000), 0 without CUDA.
int cuda_runtime_version();

}  // namespace clipadapt
