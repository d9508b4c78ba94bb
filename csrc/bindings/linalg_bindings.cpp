// Python binding of exact_matmul: argument conversion and dispatch only.
#include <pybind11/pybind11.h>

#include "bindings/dispatch.h"
#include "bindings/dlpack_capsule.h"
#include "linalg/exact_matmul.h"

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

}  // namespace

void register_linalg(py::module_& m) {
  m.def("exact_matmul_into", &exact_matmul_into, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("stream") = 0,
        "out [M, N] = a [M, D] @ b [D, N], every entry the canonical float64 dot rounded once to the dtype; "
        "returns how many entries were computed by the canonical dot itself.");
}

}  // namespace clipadapt::bindings
