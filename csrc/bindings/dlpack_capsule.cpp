#include "bindings/dlpack_capsule.h"

#include <cstring>
#include <string>

#include "core/dlpack.h"
#include "core/errors.h"

namespace py = pybind11;

namespace clipadapt::bindings {
namespace {

DType dtype_from_dlpack(const DLDataType& type, const char* name) {
  if (type.lanes == 1) {
    if (type.code == kDLFloat && type.bits == 32) return DType::Float32;
    if (type.code == kDLFloat && type.bits == 64) return DType::Float64;
    if (type.code == kDLFloat && type.bits == 16) return DType::Float16;
    if (type.code == kDLBfloat && type.bits == 16) return DType::BFloat16;
    if (type.code == kDLInt && type.bits == 64) return DType::Int64;
  }
  throw UnsupportedType(std::string(name) + ": unsupported dtype (DLPack code " + std::to_string(type.code) +
                        ", " + std::to_string(type.bits) + " bits); use float32, float16 or bfloat16");
}

Device device_from_dlpack(const DLDevice& device, const char* name) {
  if (device.device_type == kDLCPU || device.device_type == kDLCUDAHost) return {DeviceKind::CPU, 0};
  if (device.device_type == kDLCUDA || device.device_type == kDLCUDAManaged) {
    return {DeviceKind::CUDA, device.device_id};
  }
  throw InvalidArgument(std::string(name) + ": unsupported device type " + std::to_string(device.device_type) +
                        "; move the array to the CPU or a CUDA device");
}

bool is_c_contiguous(const DLTensor& t) {
  if (t.strides == nullptr) return true;
  int64_t expected = 1;
  for (int dim = t.ndim - 1; dim >= 0; --dim) {
    if (t.shape[dim] != 1 && t.strides[dim] != expected) return false;
    expected *= t.shape[dim];
  }
  return true;
}

}  // namespace

Matrix matrix_from_capsule(const py::capsule& capsule, const char* name, bool writable) {
  const char* capsule_name = capsule.name();
  const DLTensor* tensor = nullptr;
  bool read_only = false;
  if (capsule_name != nullptr && std::strcmp(capsule_name, "dltensor_versioned") == 0) {
    auto* managed = static_cast<DLManagedTensorVersioned*>(capsule.get_pointer());
    if (managed->version.major != 1) {
      throw InvalidArgument(std::string(name) + ": DLPack major version " +
                            std::to_string(managed->version.major) + " is not supported (need 1)");
    }
    tensor = &managed->dl_tensor;
    read_only = (managed->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0;
  } else if (capsule_name != nullptr && std::strcmp(capsule_name, "dltensor") == 0) {
    tensor = &static_cast<DLManagedTensor*>(capsule.get_pointer())->dl_tensor;
  } else {
    throw InvalidArgument(std::string(name) + ": expected an unconsumed DLPack capsule");
  }
  if (writable && read_only) throw InvalidArgument(std::string(name) + ": output buffer is read-only");
  if (tensor->ndim != 1 && tensor->ndim != 2) {
    throw InvalidArgument(std::string(name) + ": must be 2-D [rows, d] (got " + std::to_string(tensor->ndim) +
                          " dimensions)");
  }
  if (!is_c_contiguous(*tensor)) {
    throw InvalidArgument(std::string(name) + ": must be C-contiguous (the Python layer makes it so)");
  }
  Matrix m;
  m.dtype = dtype_from_dlpack(tensor->dtype, name);
  m.device = device_from_dlpack(tensor->device, name);
  m.rows = tensor->shape[0];
  m.cols = tensor->ndim == 2 ? tensor->shape[1] : 1;
  m.data = static_cast<char*>(tensor->data) + tensor->byte_offset;
  return m;
}

void require_same_device(const Matrix& a, const char* a_name, const Matrix& b, const char* b_name) {
  if (a.device != b.device) {
    throw InvalidArgument(std::string(a_name) + " is on " + a.device.str() + " but " + b_name + " is on " +
                          b.device.str() + "; move both to the same device");
  }
}

void require_one_device(std::initializer_list<NamedArray> arrays) {
  const NamedArray& first = *arrays.begin();
  for (const NamedArray& other : arrays) require_same_device(first.array, first.name, other.array, other.name);
}

}  // namespace clipadapt::bindings
