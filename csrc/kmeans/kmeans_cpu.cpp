// CPU k-means building blocks (see kmeans.h): counting-sort grouping, per-cluster
// reductions, k-means++ seeding and IVF list scanning, parallel with OpenMP.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/half.h"
#include "kmeans/kmeans.h"
#include "kmeans/split_rules.h"
#include "knn/topk_heap.h"

namespace clipadapt::kmeans {
namespace {

// Row `row` of a feature matrix, widened to float32 into `out` (d entries).
void widen_row(const Matrix& m, int64_t row, float* out) {
  const int64_t d = m.cols;
  if (m.dtype == DType::Float32) {
    std::copy_n(m.as<const float>() + row * d, d, out);
  } else if (m.dtype == DType::BFloat16) {
    const uint16_t* source = m.as<const uint16_t>() + row * d;
    for (int64_t j = 0; j < d; ++j) out[j] = bfloat16_to_float(source[j]);
  } else {
    const uint16_t* source = m.as<const uint16_t>() + row * d;
    for (int64_t j = 0; j < d; ++j) out[j] = float16_to_float(source[j]);
  }
}

void normalize_rows(float* rows, int64_t count, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < count; ++r) {
    float* row = rows + r * d;
    double squared = 0.0;
    for (int64_t j = 0; j < d; ++j) squared += double(row[j]) * row[j];
    if (squared > 0.0) {
      const float scale = static_cast<float>(1.0 / std::sqrt(squared));
      for (int64_t j = 0; j < d; ++j) row[j] *= scale;
    }
  }
}

// Re-seeds empty clusters by splitting the largest one (kmeans.h); returns how many.
int64_t split_empty_clusters(float* centroids, int64_t* counts, int64_t clusters, int64_t d) {
  int64_t split = 0;
  for (int64_t empty = 0; empty < clusters; ++empty) {
    if (counts[empty] != 0) continue;
    const int64_t largest = largest_cluster(counts, clusters);
    if (counts[largest] < 2) break;  // nothing left to split
    float* fresh = centroids + empty * d;
    float* source = centroids + largest * d;
    for (int64_t j = 0; j < d; ++j) {
      fresh[j] = split_coordinate(source[j], j, true);
      source[j] = split_coordinate(source[j], j, false);
    }
    counts[empty] = counts[largest] / 2;
    counts[largest] -= counts[empty];
    ++split;
  }
  return split;
}

// Deterministic [0, 1) from a 64-bit generator (std::uniform_real_distribution is not
// specified bit for bit across standard libraries).
double unit_uniform(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

constexpr int64_t kSumBlockRows = 4096;

// Index of the first row whose running sum of weights exceeds `target` (blocked, so the
// sums are the same whatever the thread count).
int64_t sample_by_weight(const std::vector<double>& weights, std::mt19937_64& rng) {
  const int64_t n = static_cast<int64_t>(weights.size());
  const int64_t blocks = (n + kSumBlockRows - 1) / kSumBlockRows;
  std::vector<double> block_sums(blocks, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    double sum = 0.0;
    for (int64_t i = b * kSumBlockRows; i < std::min(n, (b + 1) * kSumBlockRows); ++i) sum += weights[i];
    block_sums[b] = sum;
  }
  double total = 0.0;
  for (double sum : block_sums) total += sum;
  const double u = unit_uniform(rng);
  if (!(total > 0.0)) return std::min<int64_t>(n - 1, static_cast<int64_t>(u * n));  // all rows coincide
  double target = u * total;
  int64_t b = 0;
  while (b < blocks - 1 && target >= block_sums[b]) target -= block_sums[b++];
  int64_t i = b * kSumBlockRows;
  const int64_t stop = std::min(n, (b + 1) * kSumBlockRows);
  while (i < stop - 1 && target >= weights[i]) target -= weights[i++];
  return i;
}

// Squared distance of every row to row `center` (2 - 2 cos for cosine / inner product).
void distances_to(const Matrix& x, const std::vector<float>& squared_norms, int64_t center, knn::Metric metric,
                  std::vector<double>& out) {
  const int64_t d = x.cols;
  std::vector<float> c(d);
  widen_row(x, center, c.data());
#pragma omp parallel
  {
    std::vector<float> row(d);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < x.rows; ++i) {
      widen_row(x, i, row.data());
      double dot = 0.0;
      for (int64_t j = 0; j < d; ++j) dot += double(row[j]) * c[j];
      double distance;
      if (metric == knn::Metric::L2) {
        distance = double(squared_norms[i]) + squared_norms[center] - 2.0 * dot;
      } else {
        const double norms = std::sqrt(double(squared_norms[i]) * squared_norms[center]);
        distance = 2.0 - 2.0 * (norms > 0.0 ? dot / norms : 0.0);
      }
      out[i] = std::max(distance, 0.0);
    }
  }
}

}  // namespace

void group_by_cluster_cpu(const GroupProblem& p) {
  validate(p);
  const int64_t n = p.assignments.rows;
  const auto* assignments = p.assignments.as<const int64_t>();
  auto* offsets = p.offsets.as<int64_t>();
  auto* order = p.order.as<int64_t>();
  std::fill(offsets, offsets + p.clusters + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    require(assignments[i] >= 0 && assignments[i] < p.clusters,
            "assignments: entry " + std::to_string(assignments[i]) + " at row " + std::to_string(i) +
                " is outside [0, n_clusters)");
    ++offsets[assignments[i] + 1];
  }
  for (int64_t c = 0; c < p.clusters; ++c) offsets[c + 1] += offsets[c];
  std::vector<int64_t> cursor(offsets, offsets + p.clusters);
  for (int64_t i = 0; i < n; ++i) order[cursor[assignments[i]]++] = i;
}

int64_t update_centroids_cpu(const UpdateProblem& p) {
  validate(p);
  const int64_t clusters = p.offsets.rows - 1, d = p.x.cols;
  const auto* offsets = p.offsets.as<const int64_t>();
  const auto* order = p.order.as<const int64_t>();
  auto* centroids = p.centroids.as<float>();
  auto* counts = p.counts.as<int64_t>();
#pragma omp parallel
  {
    std::vector<float> row(d);
#pragma omp for schedule(dynamic, 16)
    for (int64_t c = 0; c < clusters; ++c) {
      float* sum = centroids + c * d;
      std::fill(sum, sum + d, 0.0f);
      for (int64_t e = offsets[c]; e < offsets[c + 1]; ++e) {
        widen_row(p.x, order[e], row.data());
        for (int64_t j = 0; j < d; ++j) sum[j] += row[j];
      }
      counts[c] = offsets[c + 1] - offsets[c];
      if (counts[c] > 0) {
        const float count = static_cast<float>(counts[c]);
        for (int64_t j = 0; j < d; ++j) sum[j] /= count;
      }
    }
  }
  const int64_t split = split_empty_clusters(centroids, counts, clusters, d);
  if (p.spherical) normalize_rows(centroids, clusters, d);
  return split;
}

void kmeans_plus_plus_cpu(const SeedingProblem& p) {
  validate(p);
  const int64_t n = p.x.rows, clusters = p.chosen.rows;
  std::vector<float> squared_norms(n);
#pragma omp parallel
  {
    std::vector<float> row(p.x.cols);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      widen_row(p.x, i, row.data());
      double squared = 0.0;
      for (float v : row) squared += double(v) * v;
      squared_norms[i] = static_cast<float>(squared);
    }
  }
  std::mt19937_64 rng(p.seed);
  auto* chosen = p.chosen.as<int64_t>();
  chosen[0] = std::min<int64_t>(n - 1, static_cast<int64_t>(unit_uniform(rng) * n));
  std::vector<double> nearest(n), latest(n);
  distances_to(p.x, squared_norms, chosen[0], p.metric, nearest);
  for (int64_t c = 1; c < clusters; ++c) {
    chosen[c] = sample_by_weight(nearest, rng);
    distances_to(p.x, squared_norms, chosen[c], p.metric, latest);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) nearest[i] = std::min(nearest[i], latest[i]);
  }
}

void ivf_search_cpu(const IvfSearchProblem& p) {
  validate(p);
  const int64_t d = p.queries.cols, k = p.k, lists = p.offsets.rows - 1;
  const auto* offsets = p.offsets.as<const int64_t>();
  const auto* ids = p.ids.as<const int64_t>();
  const auto* probes = p.probes.as<const int64_t>();
#pragma omp parallel
  {
    std::vector<float> query(d), row(d);
    std::vector<knn::Candidate> heap(k);
#pragma omp for schedule(dynamic, 4)
    for (int64_t q = 0; q < p.queries.rows; ++q) {
      widen_row(p.queries, q, query.data());
      double query_squared = 0.0;
      for (float v : query) query_squared += double(v) * v;
      const float query_term = knn::row_term(query_squared, p.metric);
      knn::reset_heap(heap.data(), k);
      for (int64_t probe = 0; probe < p.probes.cols; ++probe) {
        const int64_t list = probes[q * p.probes.cols + probe];
        if (list < 0 || list >= lists) continue;
        for (int64_t e = offsets[list]; e < offsets[list + 1]; ++e) {
          widen_row(p.vectors, e, row.data());
          float dot = 0.0f, squared = 0.0f;
          for (int64_t j = 0; j < d; ++j) {
            dot += query[j] * row[j];
            squared += row[j] * row[j];
          }
          const float key = knn::key_from_dot(dot, query_term, knn::row_term(squared, p.metric), p.metric);
          knn::offer(heap.data(), k, knn::Candidate{key, ids[e]});
        }
      }
      knn::write_sorted(heap.data(), k, p.metric, p.scores.as<float>() + q * k, p.indices.as<int64_t>() + q * k);
    }
  }
}

}  // namespace clipadapt::kmeans
