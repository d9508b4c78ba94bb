// CPU k-NN: blocked (query tile x database tile) dot products through OpenBLAS, each tile's
// scores turned into metric keys and fed to per-query bounded heaps while the tile is still
// in cache. OpenMP runs over (query tile, database slice) work items; when there are few
// query tiles the database is sliced so both cores stay busy, and the slices are merged.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/errors.h"
#include "core/half.h"
#include "core/parallel.h"
#include "core/simd.h"
#include "knn/cpu_tiles.h"
#include "knn/knn.h"
#include "knn/topk_heap.h"
#include "knn/topk_rules.h"

namespace clipadapt::knn {
namespace {

constexpr int64_t kQueryTile = 512;
constexpr int64_t kDatabaseTile = 512;  // 512 x 512 keys = 1 MiB, stays in L2
// Bound on one thread's heap storage, so a large k shrinks the query tile instead.
constexpr int64_t kHeapBytesPerThread = int64_t(64) << 20;

float element_as_float(const Matrix& m, int64_t offset) {
  switch (m.dtype) {
    case DType::Float16: return float16_to_float(m.as<const uint16_t>()[offset]);
    case DType::BFloat16: return bfloat16_to_float(m.as<const uint16_t>()[offset]);
    default: return m.as<const float>()[offset];
  }
}

}  // namespace

void ensure_single_threaded_blas() {
  // Set on every call: a process-wide threadpoolctl limit may have raised it since.
  scipy_openblas_set_num_threads(1);
}

std::vector<float> row_terms(const Matrix& m, Metric metric) {
  std::vector<float> terms(m.rows, 1.0f);
  if (metric == Metric::InnerProduct) return terms;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < m.rows; ++row) {
    double squared = 0.0;
    for (int64_t col = 0; col < m.cols; ++col) {
      const double value = element_as_float(m, row * m.cols + col);
      squared += value * value;
    }
    terms[row] = row_term(squared, metric);
  }
  return terms;
}

const float* rows_for_blas(const Matrix& m, int64_t first, int64_t count, std::vector<float>& buffer) {
  if (m.dtype == DType::Float32) return m.as<const float>() + first * m.cols;
  buffer.resize(count * m.cols);
  const uint16_t* source = m.as<const uint16_t>() + first * m.cols;
  if (m.dtype == DType::BFloat16) {
    for (int64_t i = 0; i < count * m.cols; ++i) buffer[i] = bfloat16_to_float(source[i]);
  } else {
    for (int64_t i = 0; i < count * m.cols; ++i) buffer[i] = float16_to_float(source[i]);
  }
  return buffer.data();
}

void dot_tile(const float* q, int64_t qn, const float* x, int64_t xn, int64_t d, float* out) {
  const auto m = static_cast<blasint>(qn), n = static_cast<blasint>(xn), kd = static_cast<blasint>(d);
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, kd, 1.0f, q, kd, x, kd, 0.0f, out, n);
}

// Dot products -> metric keys, in place, with the metric switch outside the loop so each
// loop vectorises.
void dots_to_keys(float* row, int64_t count, float query_term, const float* database_terms, Metric metric) {
  switch (metric) {
    case Metric::InnerProduct: return;
    case Metric::Cosine:
      for (int64_t j = 0; j < count; ++j) row[j] *= query_term * database_terms[j];
      return;
    case Metric::L2:
      for (int64_t j = 0; j < count; ++j) row[j] = key_from_dot(row[j], query_term, database_terms[j], metric);
      return;
  }
}

// Blocks whose every key is below the current worst are rejected with one vector compare;
// that is almost every block once the heap has warmed up. NaN keys never pass (excluded
// self, or unchecked input).
CLIPADAPT_VECTOR_CLONES
void offer_row(const float* keys, int64_t count, int64_t first_index, const int64_t* ids, Candidate* heap,
               int64_t k) {
  constexpr int64_t kBlock = 32;
  for (int64_t start = 0; start < count; start += kBlock) {
    const int64_t stop = std::min(start + kBlock, count);
    const float worst = heap[0].key;
    int reaches = 0;
    for (int64_t j = start; j < stop; ++j) reaches |= keys[j] >= worst;
    if (!reaches) continue;
    for (int64_t j = start; j < stop; ++j) offer(heap, k, Candidate{keys[j], ids ? ids[j] : first_index + j});
  }
}

namespace {

// Per-thread scratch space, reused across work items.
struct Workspace {
  std::vector<float> query_rows;     // 16-bit inputs widened to float32
  std::vector<float> database_rows;  // likewise
  std::vector<float> keys;           // [query tile, database tile]
  std::vector<Candidate> heaps;      // [query tile, k]
};

struct Plan {
  int64_t query_tile;
  int64_t query_tiles;
  int64_t slices;       // database slices per query tile
  int64_t slice_rows;   // rows per slice (a multiple of kDatabaseTile)
};

Plan make_plan(const KnnProblem& p, int threads) {
  Plan plan;
  const int64_t heap_bytes_per_query = p.k * int64_t(sizeof(Candidate));
  plan.query_tile = std::clamp<int64_t>(kHeapBytesPerThread / heap_bytes_per_query, 1, kQueryTile);
  plan.query_tiles = (p.queries.rows + plan.query_tile - 1) / plan.query_tile;
  const int64_t database_tiles = (p.database.rows + kDatabaseTile - 1) / kDatabaseTile;
  plan.slices = 1;
  if (plan.query_tiles < 2 * threads) {
    plan.slices = std::min<int64_t>(database_tiles, (2 * threads + plan.query_tiles - 1) / plan.query_tiles);
  }
  plan.slice_rows = ((database_tiles + plan.slices - 1) / plan.slices) * kDatabaseTile;
  plan.slices = (p.database.rows + plan.slice_rows - 1) / plan.slice_rows;
  return plan;
}

struct Terms {
  std::vector<float> queries;
  std::vector<float> database;
};

// Scans database rows [begin, end) for query rows [q0, q0 + qn), leaving each query's best k
// (unsorted heaps) in ws.heaps.
void search_slice(const KnnProblem& p, const Terms& terms, int64_t q0, int64_t qn, int64_t begin,
                  int64_t end, Workspace& ws) {
  const int64_t d = p.queries.cols, k = p.k;
  ws.heaps.resize(qn * k);
  reset_heap(ws.heaps.data(), qn * k);
  ws.keys.resize(qn * kDatabaseTile);
  const float* q = rows_for_blas(p.queries, q0, qn, ws.query_rows);
  for (int64_t x0 = begin; x0 < end; x0 += kDatabaseTile) {
    const int64_t xn = std::min(kDatabaseTile, end - x0);
    const float* x = rows_for_blas(p.database, x0, xn, ws.database_rows);
    dot_tile(q, qn, x, xn, d, ws.keys.data());
    for (int64_t r = 0; r < qn; ++r) {
      float* row = ws.keys.data() + r * xn;
      const int64_t query = q0 + r;
      dots_to_keys(row, xn, terms.queries[query], terms.database.data() + x0, p.metric);
      if (p.exclude_self && query >= x0 && query < x0 + xn) row[query - x0] = NAN;  // never selected
      offer_row(row, xn, x0, nullptr, ws.heaps.data() + r * k, k);
    }
  }
}

void write_rows(const KnnProblem& p, int64_t query, Candidate* best) {
  write_sorted(best, p.k, p.metric, p.scores.as<float>() + query * p.k, p.indices.as<int64_t>() + query * p.k);
}

// One work item: a query tile against one database slice.
void search_item(const KnnProblem& p, const Terms& terms, const Plan& plan, int64_t item,
                 std::vector<Candidate>& parked, Workspace& ws) {
  const int64_t tile = item / plan.slices, slice = item % plan.slices, k = p.k;
  const int64_t q0 = tile * plan.query_tile;
  const int64_t qn = std::min(plan.query_tile, p.queries.rows - q0);
  const int64_t begin = slice * plan.slice_rows;
  const int64_t end = std::min(begin + plan.slice_rows, p.database.rows);
  search_slice(p, terms, q0, qn, begin, end, ws);
  for (int64_t r = 0; r < qn; ++r) {
    Candidate* heap = ws.heaps.data() + r * k;
    if (plan.slices == 1) {
      write_rows(p, q0 + r, heap);
    } else {
      std::copy(heap, heap + k, parked.data() + ((q0 + r) * plan.slices + slice) * k);
    }
  }
}

}  // namespace

void knn_cpu(const KnnProblem& p) {
  validate(p);
  if (p.queries.rows == 0) return;
  ensure_single_threaded_blas();
  const int threads = omp_get_max_threads();
  const Plan plan = make_plan(p, threads);
  Terms terms;
  terms.database = row_terms(p.database, p.metric);
  terms.queries = (p.queries.data == p.database.data && p.queries.rows == p.database.rows)
                      ? terms.database
                      : row_terms(p.queries, p.metric);
  const int64_t k = p.k;
  // With several slices per query, each slice's heap is parked here and merged afterwards.
  std::vector<Candidate> parked(plan.slices > 1 ? p.queries.rows * plan.slices * k : 0);

  ExceptionCollector errors;
#pragma omp parallel
  {
    Workspace ws;
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < plan.query_tiles * plan.slices; ++item) {
      errors.run([&] { search_item(p, terms, plan, item, parked, ws); });
    }
    if (plan.slices > 1) {
#pragma omp for schedule(static)
      for (int64_t query = 0; query < p.queries.rows; ++query) {
        Candidate* all = parked.data() + query * plan.slices * k;
        std::partial_sort(all, all + k, all + plan.slices * k, better);
        write_rows(p, query, all);
      }
    }
  }
  errors.rethrow_first();
}

}  // namespace clipadapt::knn
