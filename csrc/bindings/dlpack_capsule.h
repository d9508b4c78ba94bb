// Conversion of DLPack capsules (legacy "dltensor" and versioned "dltensor_versioned") into
// Matrix views. The capsule is only read, never consumed: the caller's Python object keeps
// the producer's buffer alive for the duration of the call.
#pragma once
#include <initializer_list>
#include <pybind11/pybind11.h>

#include "core/array.h"

namespace clipadapt::bindings {

// `name` is the argument's public name, used in error messages. Accepts 1-D (as [n, 1]) and
// 2-D C-contiguous float32/float16/bfloat16/int64 tensors on the CPU or a CUDA device.
Matrix matrix_from_capsule(const pybind11::capsule& capsule, const char* name, bool writable);

// Raises ValueError naming both arguments when two views are on different devices.
void require_same_device(const Matrix& a, const char* a_name, const Matrix& b, const char* b_name);

// Every array of a call on one device: a kernel reads each one on the device of the first.
struct NamedArray {
  const Matrix& array;
  const char* name;
};
void require_one_device(std::initializer_list<NamedArray> arrays);

}  // namespace clipadapt::bindings
