// Runs the CPU or the CUDA kernel of a problem, by the device of its first array, without
// the GIL. Shared by the binding files.
#pragma once
#include <pybind11/pybind11.h>

#include "core/array.h"
#include "core/errors.h"

namespace clipadapt::bindings {

template <typename Problem, typename Result>
Result dispatch(const Problem& problem, const Matrix& first, Result (*cpu)(const Problem&),
                Result (*cuda)(const Problem&)) {
  pybind11::gil_scoped_release release;
  if (first.device.kind == DeviceKind::CPU) return cpu(problem);
#ifdef CLIPADAPT_WITH_CUDA
  return cuda(problem);
#else
  (void)cuda;
  throw InvalidArgument("CUDA arrays given but clipadapt was built without CUDA; reinstall with nvcc on PATH");
#endif
}

}  // namespace clipadapt::bindings

// The CUDA kernel of a primitive as a dispatch argument; a null pointer of the same type in
// CPU-only builds, which therefore never reference CUDA symbols.
#ifdef CLIPADAPT_WITH_CUDA
#define CLIPADAPT_CUDA_KERNEL(kernel) (&kernel)
#else
#define CLIPADAPT_CUDA_KERNEL(kernel) static_cast<decltype(&kernel)>(nullptr)
#endif
