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
#include "kmeans/ivf_rules.h"
#include "kmeans/kmeans.h"
#include "kmeans/seeding_rules.h"
#include "kmeans/split_rules.h"
#include "core/parallel.h"
#include "knn/cpu_tiles.h"
#include "knn/exact_score.h"
#include "knn/rescore.h"
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
#pragma omp parallel for schedule(static) num_threads(thread_count())
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

// Re-seeds empty clusters by splitting the largest one (split_rules.h); returns how many.
int64_t split_empty_clusters(float* centroids, int64_t* counts, int64_t clusters, int64_t d) {
  const auto splits = plan_splits(counts, clusters);
  for (const auto& [empty, largest] : splits) {
    float* fresh = centroids + empty * d;
    float* source = centroids + largest * d;
    for (int64_t j = 0; j < d; ++j) {
      fresh[j] = split_coordinate(source[j], j, true);
      source[j] = split_coordinate(source[j], j, false);
    }
  }
  return static_cast<int64_t>(splits.size());
}

// The row k-means++ draws next (seeding_rules.h), from block sums computed in parallel.
int64_t sample_by_weight(const std::vector<double>& weights, std::mt19937_64& rng) {
  const int64_t n = static_cast<int64_t>(weights.size());
  const int64_t blocks = (n + kSumBlockRows - 1) / kSumBlockRows;
  std::vector<double> block_sums(blocks, 0.0);
#pragma omp parallel for schedule(static) num_threads(thread_count())
  for (int64_t b = 0; b < blocks; ++b) {
    double sum = 0.0;
    for (int64_t i = b * kSumBlockRows; i < std::min(n, (b + 1) * kSumBlockRows); ++i) sum += weights[i];
    block_sums[b] = sum;
  }
  return pick_by_weight(block_sums.data(), blocks, n, unit_uniform(rng()),
                        [&](int64_t b) { return weights.data() + b * kSumBlockRows; });
}

// Squared distance of every row to row `center` (seeding_rules.h seeding_distance).
void distances_to(const Matrix& x, const std::vector<float>& squared_norms, int64_t center, knn::Metric metric,
                  std::vector<double>& out) {
  const int64_t d = x.cols;
  std::vector<float> c(d);
  widen_row(x, center, c.data());
#pragma omp parallel num_threads(thread_count())
  {
    std::vector<float> row(d);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < x.rows; ++i) {
      widen_row(x, i, row.data());
      double dot = 0.0;
      for (int64_t j = 0; j < d; ++j) dot += double(row[j]) * c[j];
      out[i] = seeding_distance(dot, squared_norms[i], squared_norms[center], metric);
    }
  }
}

// ---- IVF list scan -------------------------------------------------------------------------
// Queries are searched in blocks. Within a block the (list, query) probe pairs are grouped by
// list, so each probed list is widened once and multiplied against all the block's queries
// that probe it in one GEMM tile: queries of one class probe the same lists, which is what
// MUDG's class x descriptor queries do.

constexpr int64_t kListChunkRows = 512;  // keys of one GEMM tile: [queries of a list, 512]
constexpr int64_t kMaxQueryBlock = 256;

// Enough blocks for dynamic scheduling to balance the threads, as large as that allows.
int64_t query_block_rows(int64_t queries, int threads) {
  const int64_t per_block = (queries + 4 * threads - 1) / (4 * int64_t(threads));
  return std::clamp<int64_t>(per_block, 8, kMaxQueryBlock);
}

struct ProbePair {
  int64_t list;
  int64_t query;  // row within the block
};

struct IvfWorkspace {
  std::vector<float> queries;    // the block's queries as float32 [qn, d]
  std::vector<float> group;      // the queries probing one list, gathered [g, d]
  std::vector<float> rows;       // list rows widened to float32
  std::vector<float> keys;       // [g, chunk rows]
  std::vector<float> packed;     // the chunk's rows packed for the AVX-512 tiles
  std::vector<ProbePair> pairs;           // the block's probes, by list then query
  std::vector<ProbePair> unsorted_pairs;  // the same, by query
  std::vector<int64_t> probed_by;         // [lists]: the last pass row that probed the list, or -1
  std::vector<int64_t> list_starts;       // [lists + 1]: where each list's pairs start
  std::vector<knn::Candidate> heaps;        // [qn, width], index = storage position
  std::vector<knn::RowNormBounds> scanned;  // [qn], over the rows each query scanned
  std::vector<knn::Candidate> scratch;
};

// Every row's fast-pass term and every list's norm bounds, from the rows' squared norms:
// computed once per search, not once per (list, query block).
struct RowTerms {
  std::vector<float> terms;                    // [N]
  std::vector<knn::RowNormBounds> list_bounds;  // [lists]
};

// One fast pass over the probed lists of a set of queries, then their exact re-scoring.
struct IvfPass {
  const IvfSearchProblem& problem;
  const Matrix& queries;        // the pending queries
  const Matrix& probes;         // their probe rows
  const int64_t* output_rows;   // row of scores / indices for each pending query
  const std::vector<double>& query_norms;
  const std::vector<float>& query_terms;
  const double* row_norms;      // canonical squared norms of the index's rows
  const RowTerms& rows;         // their fast-pass terms and each list's norm bounds
  int64_t width;
  std::vector<char>& retry;     // out: the band did not fit in the list
};

// The block's scanned probes, by list then query (a counting sort). A probe is scanned as
// ivf_rules.h's scans_probe says: an in-range list the query has not probed before; the last
// query to probe each list is remembered instead of comparing each probe with the earlier ones.
void collect_probes(const IvfPass& f, int64_t q0, int64_t qn, IvfWorkspace& ws) {
  const int64_t lists = f.problem.offsets.rows - 1, nprobe = f.probes.cols;
  ws.probed_by.resize(lists, -1);  // pass rows only grow, so entries of earlier blocks never match
  ws.list_starts.assign(lists + 1, 0);
  ws.unsorted_pairs.clear();
  for (int64_t r = 0; r < qn; ++r) {
    const int64_t* probe_row = f.probes.as<const int64_t>() + (q0 + r) * nprobe;
    for (int64_t j = 0; j < nprobe; ++j) {
      const int64_t list = probe_row[j];
      if (list < 0 || list >= lists || ws.probed_by[list] == q0 + r) continue;
      ws.probed_by[list] = q0 + r;
      ws.unsorted_pairs.push_back({list, r});
      ++ws.list_starts[list + 1];
    }
  }
  for (int64_t list = 0; list < lists; ++list) ws.list_starts[list + 1] += ws.list_starts[list];
  ws.pairs.resize(ws.unsorted_pairs.size());
  for (const ProbePair& pair : ws.unsorted_pairs) ws.pairs[ws.list_starts[pair.list]++] = pair;
}

// Every row's fast-pass term and every list's norm bounds, from the rows' squared norms.
RowTerms row_terms(const IvfSearchProblem& p) {
  const int64_t lists = p.offsets.rows - 1;
  const auto* offsets = p.offsets.as<const int64_t>();
  const auto* norms = p.row_norms.as<const double>();
  RowTerms out{std::vector<float>(p.vectors.rows), std::vector<knn::RowNormBounds>(lists)};
#pragma omp parallel for schedule(dynamic, 64) num_threads(thread_count())
  for (int64_t list = 0; list < lists; ++list) {
    for (int64_t row = offsets[list]; row < offsets[list + 1]; ++row) {
      out.terms[row] = knn::fast_term(norms[row], p.metric);
      out.list_bounds[list].include(norms[row]);
    }
  }
  return out;
}

// Scans one list for the block's queries pairs[first, last) (all probing that list).
void scan_list(const IvfPass& f, int64_t q0, int64_t first, int64_t last, IvfWorkspace& ws) {
  const IvfSearchProblem& p = f.problem;
  const int64_t d = p.queries.cols, width = f.width, g = last - first, list = ws.pairs[first].list;
  const auto* offsets = p.offsets.as<const int64_t>();
  ws.group.resize(g * d);
  for (int64_t i = 0; i < g; ++i) {
    std::copy_n(ws.queries.data() + ws.pairs[first + i].query * d, d, ws.group.data() + i * d);
  }
  for (int64_t x0 = offsets[list]; x0 < offsets[list + 1]; x0 += kListChunkRows) {
    const int64_t xn = std::min(kListChunkRows, offsets[list + 1] - x0);
    const float* rows = knn::rows_for_blas(p.vectors, x0, xn, ws.rows);
    ws.keys.resize(g * xn);
    knn::dot_tile(ws.group.data(), g, rows, xn, d, ws.keys.data(), ws.packed);
    for (int64_t i = 0; i < g; ++i) {
      const int64_t r = ws.pairs[first + i].query;
      float* keys = ws.keys.data() + i * xn;
      knn::dots_to_keys(keys, xn, f.query_terms[q0 + r], f.rows.terms.data() + x0, p.metric);
      knn::offer_row(keys, xn, x0, ws.heaps.data() + r * width, width);
    }
  }
  for (int64_t i = first; i < last; ++i) ws.scanned[ws.pairs[i].query].include(f.rows.list_bounds[list]);
}

void rescore_block(const IvfPass& f, int64_t q0, int64_t qn, IvfWorkspace& ws) {
  const IvfSearchProblem& p = f.problem;
  for (int64_t r = 0; r < qn; ++r) {
    knn::Candidate* list = ws.heaps.data() + r * f.width;
    std::sort(list, list + f.width, knn::better);
    const int64_t out = f.output_rows[q0 + r];
    knn::RescoreTarget target{&f.queries, q0 + r,   f.query_norms[q0 + r], &p.vectors, f.row_norms,
                              p.ids.as<const int64_t>(),
                              p.metric,   p.k,      ws.scanned[r],         0.0,        f.width >= p.vectors.rows};
    f.retry[q0 + r] = !knn::rescore_query(target, list, f.width, p.scores.as<float>() + out * p.k,
                                          p.indices.as<int64_t>() + out * p.k, ws.scratch);
  }
}

void search_query_block(const IvfPass& f, int64_t q0, int64_t qn, IvfWorkspace& ws) {
  const int64_t d = f.queries.cols, width = f.width;
  ws.heaps.resize(qn * width);
  knn::reset_heap(ws.heaps.data(), qn * width);
  ws.scanned.assign(qn, knn::RowNormBounds{});
  const float* queries = knn::rows_for_blas(f.queries, q0, qn, ws.queries);
  if (queries != ws.queries.data()) ws.queries.assign(queries, queries + qn * d);
  collect_probes(f, q0, qn, ws);
  for (int64_t first = 0; first < int64_t(ws.pairs.size());) {
    int64_t last = first + 1;
    while (last < int64_t(ws.pairs.size()) && ws.pairs[last].list == ws.pairs[first].list) ++last;
    scan_list(f, q0, first, last, ws);
    first = last;
  }
  rescore_block(f, q0, qn, ws);
}

void run_ivf_pass(const IvfPass& f) {
  const int threads = thread_count();
  const int64_t block = query_block_rows(f.queries.rows, threads);
  const int64_t blocks = (f.queries.rows + block - 1) / block;
  ExceptionCollector errors;
#pragma omp parallel num_threads(threads)
  {
    IvfWorkspace ws;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < blocks; ++b) {
      errors.run([&] {
        const int64_t q0 = b * block;
        search_query_block(f, q0, std::min(block, f.queries.rows - q0), ws);
      });
    }
  }
  errors.rethrow_first();
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
#pragma omp parallel num_threads(thread_count())
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
  return finish_centroids_cpu(FinishProblem{p.centroids, p.counts, p.spherical, p.stream});
}

int64_t finish_centroids_cpu(const FinishProblem& p) {
  validate(p);
  const int64_t clusters = p.centroids.rows, d = p.centroids.cols;
  auto* counts = p.counts.as<int64_t>();
  require(std::all_of(counts, counts + clusters, [](int64_t c) { return c >= 0; }), "counts: must be >= 0");
  const int64_t split = split_empty_clusters(p.centroids.as<float>(), counts, clusters, d);
  if (p.spherical) normalize_rows(p.centroids.as<float>(), clusters, d);
  return split;
}

void kmeans_plus_plus_cpu(const SeedingProblem& p) {
  validate(p);
  const int64_t n = p.x.rows, clusters = p.chosen.rows;
  std::vector<float> squared_norms(n);
#pragma omp parallel num_threads(thread_count())
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
  chosen[0] = uniform_row(unit_uniform(rng()), n);
  std::vector<double> nearest(n), latest(n);
  distances_to(p.x, squared_norms, chosen[0], p.metric, nearest);
  for (int64_t c = 1; c < clusters; ++c) {
    if (interrupt_requested()) throw Interrupted();
    chosen[c] = sample_by_weight(nearest, rng);
    distances_to(p.x, squared_norms, chosen[c], p.metric, latest);
#pragma omp parallel for schedule(static) num_threads(thread_count())
    for (int64_t i = 0; i < n; ++i) nearest[i] = std::min(nearest[i], latest[i]);
  }
}

void ivf_search_cpu(const IvfSearchProblem& p) {
  validate(p);
  if (p.queries.rows == 0) return;
  knn::ensure_single_threaded_blas();
  const std::vector<double> all_norms = knn::canonical_squared_norms(p.queries);
  const double* row_norms = p.row_norms.as<const double>();
  const RowTerms terms_of_rows = row_terms(p);
  std::vector<int64_t> pending(p.queries.rows);
  for (int64_t i = 0; i < p.queries.rows; ++i) pending[i] = i;
  Matrix queries = p.queries, probes = p.probes;
  std::vector<unsigned char> query_storage, probe_storage;
  // Lists may hold fewer than k rows in all: the list is at least k wide, empty slots stay empty.
  const int64_t rows = std::max(p.vectors.rows, p.k);
  for (int64_t width = knn::initial_width(p.k, rows);; width = knn::wider_width(width, rows)) {
    std::vector<double> norms(pending.size());
    for (size_t i = 0; i < pending.size(); ++i) norms[i] = all_norms[pending[i]];
    const std::vector<float> terms = knn::fast_terms(norms, p.metric);
    std::vector<char> retry(pending.size(), 0);
    run_ivf_pass(IvfPass{p, queries, probes, pending.data(), norms, terms, row_norms, terms_of_rows, width, retry});
    std::vector<int64_t> again;
    for (size_t i = 0; i < pending.size(); ++i) {
      if (retry[i]) again.push_back(pending[i]);
    }
    if (again.empty()) break;
    pending = std::move(again);
    queries = knn::gather_rows(p.queries, pending, query_storage);
    probes = knn::gather_rows(p.probes, pending, probe_storage);
  }
}

}  // namespace clipadapt::kmeans
