#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "core/device.h"
#include "core/errors.h"

namespace clipadapt {
namespace {

constexpr int kMaxDevices = 64;

// A kernel whose attributes tell whether this build has an image the device can run.
__global__ void probe_kernel() {}

// Per device: 0 not yet asked, 1 supported, 2 not supported.
std::array<std::atomic<int>, kMaxDevices> support_state{};

bool ask_supported(int index) {
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return false;
  if (cudaSetDevice(index) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  cudaFuncAttributes attributes{};
  const bool supported = cudaFuncGetAttributes(&attributes, probe_kernel) == cudaSuccess;
  (void)cudaGetLastError();
  if (previous != index && primary_context_active(previous)) (void)cudaSetDevice(previous);
  return supported;
}

std::string architecture_of(int index) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return "unknown";
  return std::string(prop.name) + ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
}

}  // namespace

bool cuda_compiled() { return true; }

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: not an error for us
    return 0;
  }
  return count;
}

bool cuda_device_supported(int index) {
  if (index < 0 || index >= kMaxDevices || index >= cuda_device_count()) return false;
  int state = support_state[index].load();
  if (state == 0) {
    state = ask_supported(index) ? 1 : 2;
    support_state[index].store(state);
  }
  return state == 1;
}

void require_supported_device(int index) {
  if (cuda_device_supported(index)) return;
  throw DeviceError("cuda:" + std::to_string(index) + " (" + architecture_of(index) +
                    "): this clipadapt build has no kernels for its architecture; rebuild from source with "
                    "-C cmake.define.CMAKE_CUDA_ARCHITECTURES=<its sm number> or use the CPU");
}

bool primary_context_active(int device) {
  // cuDevicePrimaryCtxGetState from the driver, reached through the runtime (no libcuda link).
  using GetState = int (*)(int, unsigned int*, int*);
  static const GetState get_state = [] {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuDevicePrimaryCtxGetState", &function, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      return GetState(nullptr);
    }
    return reinterpret_cast<GetState>(function);
  }();
  if (get_state == nullptr) return true;
  unsigned int flags = 0;
  int active = 0;
  if (get_state(device, &flags, &active) != 0) return true;
  return active != 0;
}

cudaMemPool_t scratch_pool() {
  static std::mutex mutex;
  static std::array<cudaMemPool_t, kMaxDevices> pools{};
  int device = 0;
  CLIPADAPT_CUDA_CHECK(cudaGetDevice(&device));
  require(device < kMaxDevices, "device: clipadapt supports up to 64 CUDA devices per process");
  std::lock_guard<std::mutex> lock(mutex);
  if (pools[device] == nullptr) {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    CLIPADAPT_CUDA_CHECK(cudaMemPoolCreate(&pools[device], &props));
    uint64_t keep = kScratchPoolKeepBytes;
    CLIPADAPT_CUDA_CHECK(cudaMemPoolSetAttribute(pools[device], cudaMemPoolAttrReleaseThreshold, &keep));
  }
  return pools[device];
}

std::vector<CudaDeviceInfo> cuda_devices() {
  std::vector<CudaDeviceInfo> devices;
  const int count = cuda_device_count();
  for (int index = 0; index < count; ++index) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    CudaDeviceInfo info;
    info.index = index;
    info.name = prop.name;
    info.compute_capability_major = prop.major;
    info.compute_capability_minor = prop.minor;
    info.multiprocessors = prop.multiProcessorCount;
    info.total_memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    info.shared_memory_per_block_optin = static_cast<int64_t>(prop.sharedMemPerBlockOptin);
    info.supported = cuda_device_supported(index);
    devices.push_back(info);
  }
  return devices;
}

int cuda_runtime_version() { return CUDART_VERSION; }

}  // namespace clipadapt
