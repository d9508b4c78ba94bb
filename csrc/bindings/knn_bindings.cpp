// Python binding of knn: argument conversion and dispatch only.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/dispatch.h"
#include "bindings/dlpack_capsule.h"
#include "core/errors.h"
#include "knn/knn.h"

namespace py = pybind11;

namespace clipadapt::bindings {

knn::Metric parse_metric(const std::string& metric) {
  if (metric == "cosine") return knn::Metric::Cosine;
  if (metric == "ip") return knn::Metric::InnerProduct;
  if (metric == "l2") return knn::Metric::L2;
  throw InvalidArgument("metric: unknown metric '" + metric + "'; use 'cosine', 'ip' or 'l2'");
}

namespace {

knn::Precision parse_precision(const std::string& precision) {
  if (precision == "exact") return knn::Precision::Exact;
  if (precision == "tf32") return knn::Precision::TF32;
  throw InvalidArgument("precision: unknown precision '" + precision + "'; use 'exact' or 'tf32'");
}

void knn_into(const py::capsule& queries, const py::capsule& database, int64_t k, const std::string& metric,
              bool exclude_self, const std::string& precision, const py::capsule& scores,
              const py::capsule& indices, uintptr_t stream) {
  knn::KnnProblem problem;
  problem.queries = matrix_from_capsule(queries, "queries", false);
  problem.database = matrix_from_capsule(database, "database", false);
  problem.scores = matrix_from_capsule(scores, "scores", true);
  problem.indices = matrix_from_capsule(indices, "indices", true);
  problem.k = k;
  problem.metric = parse_metric(metric);
  problem.precision = parse_precision(precision);
  problem.exclude_self = exclude_self;
  problem.stream = reinterpret_cast<void*>(stream);
  require_same_device(problem.queries, "queries", problem.database, "database");
  require_same_device(problem.queries, "queries", problem.scores, "scores");
  require_same_device(problem.queries, "queries", problem.indices, "indices");
  if (problem.queries.dtype == DType::Int64 || problem.queries.dtype == DType::Float64) {
    throw UnsupportedType(std::string("queries: ") + dtype_name(problem.queries.dtype) +
                          " features are not supported; use float32, float16 or bfloat16");
  }
  knn::validate(problem);

  dispatch(problem, problem.queries, &knn::knn_cpu, CLIPADAPT_CUDA_KERNEL(knn::knn_cuda));
}

void squared_norms_into(const py::capsule& x, const py::capsule& out, uintptr_t stream) {
  knn::SquaredNormsProblem problem;
  problem.x = matrix_from_capsule(x, "x", false);
  problem.out = matrix_from_capsule(out, "out", true);
  problem.stream = reinterpret_cast<void*>(stream);
  require_same_device(problem.x, "x", problem.out, "out");
  knn::validate(problem);
  dispatch(problem, problem.x, &knn::squared_norms_cpu, CLIPADAPT_CUDA_KERNEL(knn::squared_norms_cuda));
}

}  // namespace

void register_knn(py::module_& m) {
  m.def("knn_into", &knn_into, py::arg("queries"), py::arg("database"), py::arg("k"), py::arg("metric"),
        py::arg("exclude_self"), py::arg("precision"), py::arg("scores"), py::arg("indices"),
        py::arg("stream") = 0,
        "Exact k-NN of DLPack capsules into preallocated float32 scores and int64 indices [nq, k].");
  m.def("squared_norms_into", &squared_norms_into, py::arg("x"), py::arg("out"), py::arg("stream") = 0,
        "Canonical squared norms (float64 [n]) of the rows of x, as every exact score computes them.");
}

}  // namespace clipadapt::bindings
