// CPU-only build: no CUDA devices.
#include "core/device.h"

namespace clipadapt {

bool cuda_compiled() { return false; }
int cuda_device_count() { return 0; }
std::vector<CudaDeviceInfo> cuda_devices() { return {}; }
int cuda_runtime_version() { return 0; }
bool cuda_device_supported(int) { return false; }
void require_supported_device(int) {}

}  // namespace clipadapt
