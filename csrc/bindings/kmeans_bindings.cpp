// Python bindings of the k-means building blocks: argument conversion and dispatch only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <random>

#include <string>

#include "bindings/dispatch.h"
#include "bindings/dlpack_capsule.h"
#include "core/errors.h"
#include "kmeans/kmeans.h"

namespace py = pybind11;

namespace clipadapt::bindings {

knn::Metric parse_metric(const std::string& metric);  // knn_bindings.cpp

namespace {

void group_by_cluster_into(const py::capsule& assignments, int64_t clusters, const py::capsule& order,
                           const py::capsule& offsets, uintptr_t stream) {
  kmeans::GroupProblem problem;
  problem.assignments = matrix_from_capsule(assignments, "assignments", false);
  problem.clusters = clusters;
  problem.order = matrix_from_capsule(order, "order", true);
  problem.offsets = matrix_from_capsule(offsets, "offsets", true);
  problem.stream = reinterpret_cast<void*>(stream);
  require_one_device({{problem.assignments, "assignments"}, {problem.order, "order"}, {problem.offsets, "offsets"}});
  kmeans::validate(problem);
  dispatch(problem, problem.assignments, &kmeans::group_by_cluster_cpu, CLIPADAPT_CUDA_KERNEL(kmeans::group_by_cluster_cuda));
}

int64_t update_centroids_into(const py::capsule& x, const py::capsule& order, const py::capsule& offsets,
                              bool spherical, const py::capsule& centroids, const py::capsule& counts,
                              uintptr_t stream) {
  kmeans::UpdateProblem problem;
  problem.x = matrix_from_capsule(x, "update_x", false);
  problem.order = matrix_from_capsule(order, "order", false);
  problem.offsets = matrix_from_capsule(offsets, "offsets", false);
  problem.spherical = spherical;
  problem.centroids = matrix_from_capsule(centroids, "centroids", true);
  problem.counts = matrix_from_capsule(counts, "counts", true);
  problem.stream = reinterpret_cast<void*>(stream);
  require_one_device({{problem.x, "update_x"},
                      {problem.order, "order"},
                      {problem.offsets, "offsets"},
                      {problem.centroids, "centroids"},
                      {problem.counts, "counts"}});
  kmeans::validate(problem);
  return dispatch(problem, problem.x, &kmeans::update_centroids_cpu, CLIPADAPT_CUDA_KERNEL(kmeans::update_centroids_cuda));
}

int64_t finish_centroids(const py::capsule& centroids, const py::capsule& counts, bool spherical, uintptr_t stream) {
  kmeans::FinishProblem problem;
  problem.centroids = matrix_from_capsule(centroids, "centroids", true);
  problem.counts = matrix_from_capsule(counts, "counts", true);
  problem.spherical = spherical;
  problem.stream = reinterpret_cast<void*>(stream);
  require_one_device({{problem.centroids, "centroids"}, {problem.counts, "counts"}});
  kmeans::validate(problem);
  return dispatch(problem, problem.centroids, &kmeans::finish_centroids_cpu,
                  CLIPADAPT_CUDA_KERNEL(kmeans::finish_centroids_cuda));
}

// The first `count` outputs of std::mt19937_64(seed), the generator of the k-means++ draws
// (its output is fixed by the C++ standard), for code that repeats the seeding elsewhere.
py::array_t<uint64_t> seeding_random_bits(uint64_t seed, int64_t count) {
  require(count >= 0, "count: must be >= 0");
  py::array_t<uint64_t> bits(count);
  std::mt19937_64 generator(seed);
  for (int64_t i = 0; i < count; ++i) bits.mutable_data()[i] = generator();
  return bits;
}

void kmeans_plus_plus_into(const py::capsule& x, const std::string& metric, uint64_t seed, const py::capsule& chosen,
                           uintptr_t stream) {
  kmeans::SeedingProblem problem;
  problem.x = matrix_from_capsule(x, "x", false);
  problem.metric = parse_metric(metric);
  problem.seed = seed;
  problem.chosen = matrix_from_capsule(chosen, "chosen", true);
  problem.stream = reinterpret_cast<void*>(stream);
  require_same_device(problem.x, "x", problem.chosen, "chosen");
  kmeans::validate(problem);
  dispatch(problem, problem.x, &kmeans::kmeans_plus_plus_cpu, CLIPADAPT_CUDA_KERNEL(kmeans::kmeans_plus_plus_cuda));
}

void ivf_search_into(const py::capsule& queries, const py::capsule& vectors, const py::capsule& ids,
                     const py::capsule& row_norms, const py::capsule& offsets, const py::capsule& probes, int64_t k, const std::string& metric,
                     const py::capsule& scores, const py::capsule& indices, uintptr_t stream) {
  kmeans::IvfSearchProblem problem;
  problem.queries = matrix_from_capsule(queries, "queries", false);
  problem.vectors = matrix_from_capsule(vectors, "vectors", false);
  problem.ids = matrix_from_capsule(ids, "ids", false);
  problem.row_norms = matrix_from_capsule(row_norms, "row_norms", false);
  problem.offsets = matrix_from_capsule(offsets, "offsets", false);
  problem.probes = matrix_from_capsule(probes, "probes", false);
  problem.k = k;
  problem.metric = parse_metric(metric);
  problem.scores = matrix_from_capsule(scores, "scores", true);
  problem.indices = matrix_from_capsule(indices, "indices", true);
  problem.stream = reinterpret_cast<void*>(stream);
  require_one_device({{problem.queries, "queries"},
                      {problem.vectors, "index"},
                      {problem.ids, "ids"},
                      {problem.row_norms, "row_norms"},
                      {problem.offsets, "offsets"},
                      {problem.probes, "probes"},
                      {problem.scores, "scores"},
                      {problem.indices, "indices"}});
  kmeans::validate(problem);
  dispatch(problem, problem.queries, &kmeans::ivf_search_cpu, CLIPADAPT_CUDA_KERNEL(kmeans::ivf_search_cuda));
}

}  // namespace

void register_kmeans(py::module_& m) {
  m.def("group_by_cluster_into", &group_by_cluster_into, py::arg("assignments"), py::arg("clusters"),
        py::arg("order"), py::arg("offsets"), py::arg("stream") = 0, "Stable counting sort of rows by cluster.");
  m.def("update_centroids_into", &update_centroids_into, py::arg("x"), py::arg("order"), py::arg("offsets"),
        py::arg("spherical"), py::arg("centroids"), py::arg("counts"), py::arg("stream") = 0,
        "Cluster means with empty-cluster splitting; returns the number of split clusters.");
  m.def("finish_centroids_into", &finish_centroids, py::arg("centroids"), py::arg("counts"), py::arg("spherical"),
        py::arg("stream") = 0,
        "End of a centroid update from means, in place: empty clusters split, unit rows; returns the splits.");
  m.def("seeding_random_bits", &seeding_random_bits, py::arg("seed"), py::arg("count"),
        "The first count outputs of the k-means++ generator (std::mt19937_64) for a seed.");
  m.def("kmeans_plus_plus_into", &kmeans_plus_plus_into, py::arg("x"), py::arg("metric"), py::arg("seed"),
        py::arg("chosen"), py::arg("stream") = 0, "k-means++ seeding: chosen row ids.");
  m.def("ivf_search_into", &ivf_search_into, py::arg("queries"), py::arg("vectors"), py::arg("ids"),
        py::arg("row_norms"), py::arg("offsets"), py::arg("probes"), py::arg("k"), py::arg("metric"), py::arg("scores"),
        py::arg("indices"), py::arg("stream") = 0, "Exact top-k within the probed inverted lists.");
}

}  // namespace clipadapt::bindings
