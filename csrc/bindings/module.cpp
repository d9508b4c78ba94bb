// The extension module: error translation, device queries and one register_* per primitive.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cblas.h>
#include <string>

#include "bindings/dlpack_capsule.h"
#include "core/device.h"
#include "core/errors.h"
#include "core/finite.h"
#include "core/parallel.h"
#include "knn/avx512_tiles.h"

namespace py = pybind11;

namespace clipadapt::bindings {
void register_knn(py::module_& m);
void register_sparse(py::module_& m);
void register_kmeans(py::module_& m);
void register_rules(py::module_& m);
void register_linalg(py::module_& m);
}

namespace {

// The Python exception that stopped a long call (KeyboardInterrupt, or whatever a custom
// SIGINT handler raised), kept from the poll until the call has unwound to the binding.
py::object pending_interrupt_type, pending_interrupt_value, pending_interrupt_traceback;

// Installed as the kernels' interrupt poll: runs Python's signal handlers.
bool python_signal_pending() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() == 0) return false;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  pending_interrupt_type = py::reinterpret_steal<py::object>(type);
  pending_interrupt_value = py::reinterpret_steal<py::object>(value);
  pending_interrupt_traceback = py::reinterpret_steal<py::object>(traceback);
  return true;
}

void restore_pending_interrupt() {
  if (!pending_interrupt_type) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    return;
  }
  PyErr_Restore(pending_interrupt_type.release().ptr(), pending_interrupt_value.release().ptr(),
                pending_interrupt_traceback.release().ptr());
}

void register_error_translation() {
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const clipadapt::Interrupted&) {
      restore_pending_interrupt();
    } catch (const clipadapt::UnsupportedType& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const clipadapt::InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const clipadapt::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const clipadapt::DeviceError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
}

py::list cuda_devices_as_dicts() {
  py::list devices;
  for (const auto& info : clipadapt::cuda_devices()) {
    py::dict entry;
    entry["index"] = info.index;
    entry["name"] = info.name;
    entry["compute_capability"] = py::make_tuple(info.compute_capability_major, info.compute_capability_minor);
    entry["multiprocessors"] = info.multiprocessors;
    entry["total_memory_bytes"] = info.total_memory_bytes;
    entry["shared_memory_per_block_optin"] = info.shared_memory_per_block_optin;
    entry["supported"] = info.supported;
    devices.append(entry);
  }
  return devices;
}

// Which CPU kernels run on this machine, for benchmark records: the OpenBLAS core type of the
// float32 tiles (OPENBLAS_CORETYPE can force another) and whether bfloat16 tiles use AVX-512 BF16.
py::dict cpu_kernels() {
  py::dict kernels;
  kernels["blas"] = std::string("scipy-openblas32 ") + scipy_openblas_get_config();
  kernels["blas_core"] = std::string(scipy_openblas_get_corename());
  kernels["bfloat16_tiles"] = clipadapt::knn::bf16_tiles_available() ? "avx512_bf16" : "widened to float32 for sgemm";
  kernels["float32_tiles"] = clipadapt::knn::float32_tiles_available() ? "avx512f" : "openblas sgemm";
  kernels["float64_tiles"] = clipadapt::knn::float64_tiles_available() ? "avx512f" : "openblas dgemm";
  return kernels;
}

bool has_nonfinite(const py::capsule& values, [[maybe_unused]] uintptr_t stream) {
  const clipadapt::Matrix m = clipadapt::bindings::matrix_from_capsule(values, "values", false);
  py::gil_scoped_release release;
  if (m.device.kind == clipadapt::DeviceKind::CUDA) {
#ifdef CLIPADAPT_WITH_CUDA
    return clipadapt::has_nonfinite_cuda(m, reinterpret_cast<void*>(stream));
#else
    throw clipadapt::InvalidArgument("values: CUDA array given but clipadapt was built without CUDA");
#endif
  }
  return clipadapt::has_nonfinite_cpu(m);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "clipadapt native kernels (C++/OpenMP and CUDA)";
  register_error_translation();
  m.def("cuda_compiled", &clipadapt::cuda_compiled, "Whether the CUDA kernels were built.");
  m.def("cuda_device_count", &clipadapt::cuda_device_count, "Usable CUDA devices (0 without a driver).");
  m.def("cuda_runtime_version", &clipadapt::cuda_runtime_version);
  m.def("cuda_devices", &cuda_devices_as_dicts, "Properties of each usable CUDA device.");
  m.def("get_num_threads", &clipadapt::thread_count, "Threads used by the CPU kernels (process-wide).");
  m.def("set_num_threads", &clipadapt::set_thread_count, py::arg("threads"),
        "Set the threads used by the CPU kernels, for every calling thread (process-wide).");
  clipadapt::set_interrupt_poll(&python_signal_pending);
  m.def("cpu_kernels", &cpu_kernels, "Which CPU kernels run on this machine (BLAS core, bfloat16 tiles).");
  m.def("has_nonfinite", &has_nonfinite, py::arg("values"), py::arg("stream") = 0,
        "Whether a DLPack float array holds NaN or Inf.");
  clipadapt::bindings::register_knn(m);
  clipadapt::bindings::register_sparse(m);
  clipadapt::bindings::register_kmeans(m);
  clipadapt::bindings::register_rules(m);
  clipadapt::bindings::register_linalg(m);
}
