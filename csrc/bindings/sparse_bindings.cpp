// Python bindings of the sparse primitives: argument conversion and dispatch only.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/dispatch.h"
#include "bindings/dlpack_capsule.h"
#include "core/errors.h"
#include "sparse/sparse.h"

namespace py = pybind11;

namespace clipadapt::bindings {
namespace {

sparse::AffinityKernel parse_kernel(const std::string& kernel) {
  if (kernel == "shifted_cosine") return sparse::AffinityKernel::ShiftedCosine;
  if (kernel == "cosine_power") return sparse::AffinityKernel::CosinePower;
  throw InvalidArgument("kernel: unknown kernel '" + kernel + "'; use 'shifted_cosine' or 'cosine_power'");
}

sparse::Symmetrize parse_symmetrize(const std::string& symmetrize) {
  if (symmetrize == "mean") return sparse::Symmetrize::Mean;
  if (symmetrize == "sum") return sparse::Symmetrize::Sum;
  throw InvalidArgument("symmetrize: unknown rule '" + symmetrize + "'; use 'mean' or 'sum'");
}

sparse::Csr csr_from(const py::capsule& indptr, const py::capsule& indices, const py::capsule& values, int64_t rows,
                     int64_t cols, const char* name, bool writable) {
  sparse::Csr csr;
  csr.indptr = matrix_from_capsule(indptr, (std::string(name) + ".indptr").c_str(), writable);
  csr.indices = matrix_from_capsule(indices, (std::string(name) + ".indices").c_str(), writable);
  csr.values = matrix_from_capsule(values, (std::string(name) + ".values").c_str(), writable);
  csr.rows = rows;
  csr.cols = cols;
  require_one_device({{csr.indptr, "indptr"}, {csr.indices, "indices"}, {csr.values, "values"}});
  return csr;
}

int64_t affinity_into(const py::capsule& neighbors, const py::capsule& similarities, const std::string& kernel,
                      double gamma, const std::string& symmetrize, bool normalize, const py::capsule& indptr,
                      const py::capsule& indices, const py::capsule& values, const py::capsule& degrees,
                      uintptr_t stream) {
  sparse::AffinityProblem problem;
  problem.neighbors = matrix_from_capsule(neighbors, "graph.indices", false);
  problem.similarities = matrix_from_capsule(similarities, "graph.scores", false);
  const int64_t n = problem.neighbors.rows;
  problem.out = csr_from(indptr, indices, values, n, n, "out", true);
  problem.degrees = matrix_from_capsule(degrees, "degrees", true);
  problem.kernel = parse_kernel(kernel);
  problem.symmetrize = parse_symmetrize(symmetrize);
  problem.gamma = gamma;
  problem.normalize = normalize;
  problem.stream = reinterpret_cast<void*>(stream);
  require_one_device({{problem.neighbors, "graph.indices"},
                      {problem.similarities, "graph.scores"},
                      {problem.out.indptr, "out"},
                      {problem.degrees, "degrees"}});
  sparse::validate(problem);
  return dispatch(problem, problem.neighbors, &sparse::affinity_cpu, CLIPADAPT_CUDA_KERNEL(sparse::affinity_cuda));
}

void spmm_into(const py::capsule& indptr, const py::capsule& indices, const py::capsule& values, int64_t rows,
               int64_t cols, const py::capsule& x, const py::object& y, const py::capsule& out, double scale_ax,
               double scale_y, uintptr_t stream) {
  sparse::SpmmProblem problem;
  problem.a = csr_from(indptr, indices, values, rows, cols, "S", false);
  problem.x = matrix_from_capsule(x, "X", false);
  if (!y.is_none()) problem.y = matrix_from_capsule(y.cast<py::capsule>(), "Y", false);
  problem.out = matrix_from_capsule(out, "out", true);
  problem.scale_ax = scale_ax;
  problem.scale_y = scale_y;
  problem.stream = reinterpret_cast<void*>(stream);
  require_one_device({{problem.a.indptr, "S"}, {problem.x, "X"}, {problem.out, "out"}});
  if (problem.y.data != nullptr) require_same_device(problem.a.indptr, "S", problem.y, "Y");
  sparse::validate(problem);
  dispatch(problem, problem.x, &sparse::spmm_cpu, CLIPADAPT_CUDA_KERNEL(sparse::spmm_cuda));
}

void conjugate_gradient_into(const py::capsule& indptr, const py::capsule& indices, const py::capsule& values,
                             int64_t n, const py::capsule& b, double alpha, int64_t max_iter, double tol,
                             const py::capsule& x, const py::capsule& iterations, const py::capsule& residuals,
                             uintptr_t stream) {
  sparse::ConjugateGradientProblem problem;
  problem.s = csr_from(indptr, indices, values, n, n, "S", false);
  problem.b = matrix_from_capsule(b, "Y", false);
  problem.x = matrix_from_capsule(x, "x", true);
  problem.iterations = matrix_from_capsule(iterations, "iterations", true);
  problem.residuals = matrix_from_capsule(residuals, "residuals", true);
  problem.alpha = alpha;
  problem.max_iter = max_iter;
  problem.tol = tol;
  problem.stream = reinterpret_cast<void*>(stream);
  require_one_device({{problem.s.indptr, "S"},
                      {problem.b, "Y"},
                      {problem.x, "x"},
                      {problem.iterations, "iterations"},
                      {problem.residuals, "residuals"}});
  sparse::validate(problem);
  dispatch(problem, problem.b, &sparse::conjugate_gradient_cpu, CLIPADAPT_CUDA_KERNEL(sparse::conjugate_gradient_cuda));
}

}  // namespace

void register_sparse(py::module_& m) {
  m.def("affinity_into", &affinity_into, py::arg("neighbors"), py::arg("similarities"), py::arg("kernel"),
        py::arg("gamma"), py::arg("symmetrize"), py::arg("normalize"), py::arg("indptr"), py::arg("indices"),
        py::arg("values"), py::arg("degrees"), py::arg("stream") = 0,
        "Normalised symmetric affinity of a k-NN graph into CSR arrays of capacity 2 n k; returns nnz.");
  m.def("spmm_into", &spmm_into, py::arg("indptr"), py::arg("indices"), py::arg("values"), py::arg("rows"),
        py::arg("cols"), py::arg("x"), py::arg("y"), py::arg("out"), py::arg("scale_ax"), py::arg("scale_y"),
        py::arg("stream") = 0, "out = scale_y * y + scale_ax * (A x) for CSR A.");
  m.def("conjugate_gradient_into", &conjugate_gradient_into, py::arg("indptr"), py::arg("indices"),
        py::arg("values"), py::arg("n"), py::arg("b"), py::arg("alpha"), py::arg("max_iter"), py::arg("tol"),
        py::arg("x"), py::arg("iterations"), py::arg("residuals"), py::arg("stream") = 0,
        "Block CG for (I - alpha S) X = B, all columns in lock step.");
}

}  // namespace clipadapt::bindings
