// A typed, bounds-carrying view of a caller's buffer, built from DLPack by the bindings.
// Kernels take views and never own memory.
#pragma once
#include <cstdint>
#include <string>

namespace clipadapt {

enum class DType { Float32, Float16, BFloat16, Float64, Int64 };
enum class DeviceKind { CPU, CUDA };

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
  }
  return "unknown";
}

inline int dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float16: return 2;
    case DType::BFloat16: return 2;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
  }
  return 0;
}

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;
  bool operator==(const Device& other) const { return kind == other.kind && index == other.index; }
  bool operator!=(const Device& other) const { return !(*this == other); }
  std::string str() const {
    return kind == DeviceKind::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
};

// Row-major, C-contiguous 2-D (or 1-D with cols == 1) array.
struct Matrix {
  void* data = nullptr;
  DType dtype = DType::Float32;
  Device device;
  int64_t rows = 0;
  int64_t cols = 0;

  int64_t size() const { return rows * cols; }
  template <typename T>
  T* as() const { return static_cast<T*>(data); }
};

}  // namespace clipadapt
