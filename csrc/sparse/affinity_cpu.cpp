// CPU affinity: the transpose of the k-NN graph by a counting sort, then each row merges its
// out-edges with its in-edges (sorted by column, duplicates summed, diagonal dropped), is
// compacted into CSR and normalised by the degrees.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/parallel.h"
#include "sparse/affinity_rules.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {
namespace {

struct Entry {
  int64_t column;
  double weight;
};

void check_neighbor_range(const int64_t* neighbors, int64_t count, int64_t n) {
  bool bad = false;
#pragma omp parallel for reduction(|| : bad) schedule(static) num_threads(thread_count())
  for (int64_t e = 0; e < count; ++e) bad = bad || neighbors[e] < 0 || neighbors[e] >= n;
  require(!bad, "graph.indices: entries must lie in [0, n); a graph built with check_finite=False from NaN "
                "features holds -1: rebuild it from finite features");
}

// In-edges of every node, sources ascending: (in_offsets [n + 1], sources, weights).
struct Transpose {
  std::vector<int64_t> offsets, sources;
  std::vector<double> weights;
};

Transpose transpose(const int64_t* neighbors, const std::vector<double>& weights, int64_t n, int64_t k) {
  Transpose t;
  t.offsets.assign(n + 1, 0);
  for (int64_t e = 0; e < n * k; ++e) ++t.offsets[neighbors[e] + 1];
  for (int64_t i = 0; i < n; ++i) t.offsets[i + 1] += t.offsets[i];
  t.sources.resize(n * k);
  t.weights.resize(n * k);
  std::vector<int64_t> cursor(t.offsets.begin(), t.offsets.end() - 1);
  for (int64_t e = 0; e < n * k; ++e) {
    const int64_t slot = cursor[neighbors[e]]++;
    t.sources[slot] = e / k;
    t.weights[slot] = weights[e];
  }
  return t;
}

// Row i of W into `merged` (sorted by column, duplicates summed, no diagonal); returns its length.
int64_t merge_row(int64_t i, const int64_t* neighbors, const std::vector<double>& weights, int64_t k,
                  const Transpose& t, double scale, std::vector<Entry>& scratch, Entry* merged) {
  scratch.clear();
  for (int64_t e = i * k; e < (i + 1) * k; ++e) scratch.push_back({neighbors[e], weights[e]});
  for (int64_t e = t.offsets[i]; e < t.offsets[i + 1]; ++e) scratch.push_back({t.sources[e], t.weights[e]});
  // Stable: duplicates are summed in a fixed order, so the result is deterministic.
  std::stable_sort(scratch.begin(), scratch.end(), [](const Entry& a, const Entry& b) { return a.column < b.column; });
  int64_t length = 0;
  for (const Entry& entry : scratch) {
    if (entry.column == i) continue;
    if (length > 0 && merged[length - 1].column == entry.column) {
      merged[length - 1].weight += entry.weight;
    } else {
      merged[length++] = entry;
    }
  }
  for (int64_t j = 0; j < length; ++j) merged[j].weight *= scale;
  return length;
}

template <typename Value>
void write_csr(const AffinityProblem& p, const std::vector<Entry>& merged, const std::vector<int64_t>& row_start,
               const std::vector<int64_t>& row_length) {
  const int64_t n = p.neighbors.rows;
  auto* indptr = p.out.indptr.as<int64_t>();
  auto* indices = p.out.indices.as<int64_t>();
  auto* values = p.out.values.as<Value>();
  auto* degrees = p.degrees.as<double>();
  indptr[0] = 0;
  for (int64_t i = 0; i < n; ++i) indptr[i + 1] = indptr[i] + row_length[i];
#pragma omp parallel for schedule(static) num_threads(thread_count())
  for (int64_t i = 0; i < n; ++i) {
    double degree = 0.0;
    for (int64_t j = 0; j < row_length[i]; ++j) degree += merged[row_start[i] + j].weight;
    degrees[i] = degree;
  }
#pragma omp parallel for schedule(dynamic, 256) num_threads(thread_count())
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < row_length[i]; ++j) {
      const Entry& entry = merged[row_start[i] + j];
      const double weight =
          p.normalize ? normalized_weight(entry.weight, degrees[i], degrees[entry.column]) : entry.weight;
      indices[indptr[i] + j] = entry.column;
      values[indptr[i] + j] = static_cast<Value>(weight);
    }
  }
}

}  // namespace

int64_t affinity_cpu(const AffinityProblem& p) {
  validate(p);
  const int64_t n = p.neighbors.rows, k = p.neighbors.cols;
  const auto* neighbors = p.neighbors.as<const int64_t>();
  const auto* similarities = p.similarities.as<const float>();
  check_neighbor_range(neighbors, n * k, n);
  std::vector<double> weights(n * k);
#pragma omp parallel for schedule(static) num_threads(thread_count())
  for (int64_t e = 0; e < n * k; ++e) weights[e] = edge_weight(similarities[e], p.kernel, p.gamma);
  const Transpose t = transpose(neighbors, weights, n, k);

  // Row i's merged entries go to merged[i k + in_offsets[i] ...], room for all its edges.
  std::vector<Entry> merged(2 * n * k);
  std::vector<int64_t> row_start(n), row_length(n);
  const double scale = symmetrize_scale(p.symmetrize);
  ExceptionCollector errors;
#pragma omp parallel num_threads(thread_count())
  {
    std::vector<Entry> scratch;
#pragma omp for schedule(dynamic, 256)
    for (int64_t i = 0; i < n; ++i) {
      errors.run([&] {
        row_start[i] = i * k + t.offsets[i];
        row_length[i] = merge_row(i, neighbors, weights, k, t, scale, scratch, merged.data() + row_start[i]);
      });
    }
  }
  errors.rethrow_first();
  if (p.out.values.dtype == DType::Float64) {
    write_csr<double>(p, merged, row_start, row_length);
  } else {
    write_csr<float>(p, merged, row_start, row_length);
  }
  return p.out.indptr.as<const int64_t>()[n];
}

}  // namespace clipadapt::sparse
