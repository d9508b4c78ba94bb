// clipadapt._core._rules: the host/device rules the CUDA kernels apply, exposed so that CPU
// tests check them against NumPy (the GPU runs the same functions). Not public API.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/half.h"
#include "core/search_rules.h"
#include "kmeans/ivf_rules.h"
#include "kmeans/seeding_rules.h"
#include "kmeans/split_rules.h"
#include "knn/exact_score.h"
#include "knn/select_rules.h"
#include "knn/topk_insert.h"
#include "sparse/affinity_rules.h"

namespace py = pybind11;

namespace clipadapt::bindings {

knn::Metric parse_metric(const std::string& metric);  // knn_bindings.cpp

namespace {

using Floats = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Longs = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

double canonical_dot_of(const Floats& a, const Floats& b) {
  require(a.size() == b.size(), "a and b: lengths differ");
  return knn::canonical_dot(knn::Float32Elements{a.data()}, knn::Float32Elements{b.data()}, a.size());
}

// The list warp_insert leaves after offering the candidates in order to an empty list of k.
std::pair<std::vector<float>, std::vector<int64_t>> warp_insert_all(const Floats& keys, const Longs& indices, int k) {
  require(k >= 1 && k <= knn::kMaxFusedK, "k: must lie in [1, 128]");
  std::vector<float> list_keys(k, -INFINITY);
  std::vector<int64_t> list_indices(k, knn::kEmptyIndex);
  for (py::ssize_t i = 0; i < keys.size(); ++i) {
    knn::host_warp_insert(list_keys.data(), list_indices.data(), k, keys.data()[i], indices.data()[i]);
  }
  return {list_keys, list_indices};
}

std::pair<std::vector<float>, std::vector<int64_t>> select_top_of(const Floats& keys, int width) {
  require(width >= 1 && width <= keys.size(), "width: must lie in [1, len(keys)]");
  std::vector<float> best_keys(width);
  std::vector<int64_t> best_rows(width);
  knn::host_select_top(keys.data(), keys.size(), width, best_keys.data(), best_rows.data());
  return {best_keys, best_rows};
}

std::pair<std::vector<std::pair<int64_t, int64_t>>, std::vector<int64_t>> plan_splits_of(std::vector<int64_t> counts) {
  auto splits = kmeans::plan_splits(counts.data(), static_cast<int64_t>(counts.size()));
  return {splits, counts};
}

int64_t pick_by_weight_of(const Doubles& weights, double u) {
  const int64_t n = weights.size(), blocks = (n + kmeans::kSumBlockRows - 1) / kmeans::kSumBlockRows;
  std::vector<double> sums(blocks, 0.0);
  for (int64_t i = 0; i < n; ++i) sums[i / kmeans::kSumBlockRows] += weights.data()[i];
  return kmeans::pick_by_weight(sums.data(), blocks, n, u,
                                [&](int64_t b) { return weights.data() + b * kmeans::kSumBlockRows; });
}

// The float16 / bfloat16 bit pattern each float64 rounds to (core/half.h).
template <uint16_t (*round)(double)>
py::array_t<uint16_t> rounded_bits(const Doubles& values) {
  py::array_t<uint16_t> bits(values.size());
  for (py::ssize_t i = 0; i < values.size(); ++i) bits.mutable_data()[i] = round(values.data()[i]);
  return bits;
}

}  // namespace

void register_rules(py::module_& m) {
  py::module_ rules = m.def_submodule("_rules", "Host/device rules of the CUDA kernels, for CPU tests.");
  rules.def("canonical_dot", &canonical_dot_of, py::arg("a"), py::arg("b"));
  rules.def("exact_key", [](double dot, double q, double x, const std::string& metric) {
    return knn::exact_key(dot, q, x, parse_metric(metric));
  });
  rules.def("slab_key", &knn::slab_key);
  rules.def("warp_insert_all", &warp_insert_all, py::arg("keys"), py::arg("indices"), py::arg("k"));
  rules.def("select_top", &select_top_of, py::arg("keys"), py::arg("width"));
  rules.def("scans_probe", [](const Longs& row, int64_t position, int64_t lists) {
    require(position >= 0 && position < row.size(), "position: outside the probe row");
    return kmeans::scans_probe(row.data(), position, lists);
  });
  rules.def("plan_splits", &plan_splits_of, py::arg("counts"));
  rules.def("seeding_distance", [](double dot, double row, double center, const std::string& metric) {
    return kmeans::seeding_distance(dot, row, center, parse_metric(metric));
  });
  rules.def("unit_uniform", &kmeans::unit_uniform);
  rules.def("pick_by_weight", &pick_by_weight_of, py::arg("weights"), py::arg("u"));
  rules.def("first_not_below", [](const Longs& sorted, int64_t target) {
    return first_not_below(sorted.data(), sorted.size(), target);
  });
  rules.def("float16_from_double", &rounded_bits<float16_from_double>, py::arg("values"));
  rules.def("bfloat16_from_double", &rounded_bits<bfloat16_from_double>, py::arg("values"));
  rules.def("edge_key", &sparse::edge_key);
  rules.def("edge_row", &sparse::edge_row);
  rules.def("edge_column", &sparse::edge_column);
}

}  // namespace clipadapt::bindings
