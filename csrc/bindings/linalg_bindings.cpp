// Python bindings of exact_matmul and top_eigenvector: argument conversion and dispatch only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "bindings/dispatch.h"
#include "bindings/dlpack_capsule.h"
#include "core/errors.h"
#include "core/finite.h"
#include "linalg/exact_matmul.h"
#include "linalg/top_eigenvector.h"

namespace py = pybind11;

namespace clipadapt::bindings {
namespace {

int64_t exact_matmul_into(const py::capsule& a, const py::capsule& b, const py::capsule& out, uintptr_t stream) {
  linalg::ExactMatmulProblem problem;
  problem.a = matrix_from_capsule(a, "a", false);
  problem.b = matrix_from_capsule(b, "b", false);
  problem.out = matrix_from_capsule(out, "out", true);
  problem.stream = reinterpret_cast<void*>(stream);
  require_one_device({{problem.a, "a"}, {problem.b, "b"}, {problem.out, "out"}});
  linalg::validate(problem);
  return dispatch(problem, problem.a, &linalg::exact_matmul_cpu, CLIPADAPT_CUDA_KERNEL(linalg::exact_matmul_cuda));
}

using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;

py::array_t<double> top_eigenvector_of(const Doubles& matrix) {
  require(matrix.ndim() == 2 && matrix.shape(0) == matrix.shape(1) && matrix.shape(0) >= 1,
          "matrix: must be a square [n, n] array with n >= 1");
  Matrix values;
  values.data = const_cast<double*>(matrix.data());  // read only
  values.dtype = DType::Float64;
  values.rows = values.cols = matrix.shape(0);
  require(!has_nonfinite_cpu(values), "matrix: contains NaN or Inf");
  std::vector<double> vector;
  {
    py::gil_scoped_release unlocked;
    vector = linalg::top_eigenvector(matrix.data(), matrix.shape(0));
  }
  return py::array_t<double>(static_cast<py::ssize_t>(vector.size()), vector.data());
}

}  // namespace

void register_linalg(py::module_& m) {
  m.def("exact_matmul_into", &exact_matmul_into, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("stream") = 0,
        "out [M, N] = a [M, D] @ b [D, N], every entry the canonical float64 dot rounded once to the dtype; "
        "returns how many entries were computed by the canonical dot itself.");
  m.def("top_eigenvector", &top_eigenvector_of, py::arg("matrix"),
        "The unit eigenvector [n] of the largest eigenvalue of a symmetric float64 matrix [n, n] (upper "
        "triangle read), by LAPACK dsyevr for that eigenpair alone, single-threaded.");
}

}  // namespace clipadapt::bindings
