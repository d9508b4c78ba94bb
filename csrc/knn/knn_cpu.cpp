// CPU k-NN: a fast pass of blocked (query tile x database tile) dot products through OpenBLAS,
// each tile's scores turned into float32 keys and fed to per-query bounded heaps of a few
// more than k while the tile is still in cache, then the exact re-scoring of the candidates
// (rescore.h). OpenMP runs over (query tile, database slice) work items; when there are few
// query tiles the database is sliced so both cores stay busy, and the slices are merged.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <functional>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/errors.h"
#include "core/half.h"
#include "core/parallel.h"
#include "core/simd.h"
#include "knn/avx512_tiles.h"
#include "knn/cpu_tiles.h"
#include "knn/exact_score.h"
#include "knn/knn.h"
#include "knn/rescore.h"
#include "knn/topk_heap.h"
#include "knn/topk_rules.h"

namespace clipadapt::knn {
namespace {

constexpr int64_t kQueryTile = 512;
constexpr int64_t kDatabaseTile = 512;  // 512 x 512 keys = 1 MiB, stays in L2
// Bound on one thread's heap storage, so a large k shrinks the query tile instead.
constexpr int64_t kHeapBytesPerThread = int64_t(64) << 20;

}  // namespace

void ensure_single_threaded_blas() {
  // Set on every call: a process-wide threadpoolctl limit may have raised it since.
  scipy_openblas_set_num_threads(1);
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

namespace {

// Below this many products a tile is cheaper as plain dot products than as an sgemm call,
// whose fixed cost (dispatch, packing) dominates the few-query x short-list tiles of an IVF scan.
constexpr int64_t kSmallTileProducts = 128 * 1024;

CLIPADAPT_CLONE_INLINE float sum_lanes(const Lanes<float>& v) {
  using Half = float __attribute__((vector_size(32)));
  using Quarter = float __attribute__((vector_size(16)));
  const Half h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                 __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const Quarter g = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
  return (g[0] + g[2]) + (g[1] + g[3]);
}

// A Queries x Rows block of dot products with one register of lane sums each: every loaded
// query chunk serves Rows products and every row chunk Queries products, so the loop runs at
// the multiply-add rate rather than the load rate (a small IVF tile is reused from L1).
template <int Queries, int Rows>
CLIPADAPT_CLONE_INLINE void dot_block(const float* q, const float* x, int64_t d, float* out, int64_t out_stride) {
  Lanes<float> sums[Queries][Rows] = {};
  int64_t c = 0;
  for (; c + kLanesOf<float> <= d; c += kLanesOf<float>) {
    Lanes<float> rows[Rows], query;
    for (int r = 0; r < Rows; ++r) load_lanes(rows[r], x + r * d + c);
    for (int i = 0; i < Queries; ++i) {
      load_lanes(query, q + i * d + c);
      for (int r = 0; r < Rows; ++r) sums[i][r] += query * rows[r];
    }
  }
  for (int i = 0; i < Queries; ++i) {
    for (int r = 0; r < Rows; ++r) {
      float sum = sum_lanes(sums[i][r]);
      for (int64_t tail = c; tail < d; ++tail) sum += q[i * d + tail] * x[r * d + tail];
      out[i * out_stride + r] = sum;
    }
  }
}

// While the first queries' products run, the rows about 8 KiB ahead are prefetched: a small
// tile's rows (a short IVF list) stream from memory once, and with the hardware prefetcher
// alone the scan was latency bound (IVF search n = 100k, d = 128, nprobe 1: 7.0 -> 6.0 ms).
constexpr int64_t kPrefetchBytes = 8 << 10;

CLIPADAPT_CLONE_INLINE void prefetch_rows(const float* x, int64_t first, int64_t stop, int64_t d) {
  prefetch_bytes(x + first * d, (stop - first) * d * int64_t(sizeof(float)));
}

// Rows Queries at a time, then the remaining queries one at a time.
template <int Queries>
CLIPADAPT_CLONE_INLINE int64_t dot_query_rows(const float* q, int64_t qn, const float* x, int64_t xn, int64_t d,
                                              float* out) {
  constexpr int kRows = 4;
  const int64_t ahead = std::max<int64_t>(kRows, kPrefetchBytes / std::max<int64_t>(d * int64_t(sizeof(float)), 1));
  int64_t i = 0;
  for (; i + Queries <= qn; i += Queries) {
    int64_t j = 0;
    for (; j + kRows <= xn; j += kRows) {
      if (i == 0) prefetch_rows(x, std::min(xn, j + ahead), std::min(xn, j + ahead + kRows), d);
      dot_block<Queries, kRows>(q + i * d, x + j * d, d, out + i * xn + j, xn);
    }
    for (; j < xn; ++j) dot_block<Queries, 1>(q + i * d, x + j * d, d, out + i * xn + j, xn);
  }
  return i;
}

CLIPADAPT_VECTOR_CLONES
void small_dot_tile(const float* q, int64_t qn, const float* x, int64_t xn, int64_t d, float* out) {
  const int64_t paired = dot_query_rows<2>(q, qn, x, xn, d, out);
  dot_query_rows<1>(q + paired * d, qn - paired, x, xn, d, out + paired * xn);
}

}  // namespace

void dot_tile(const float* q, int64_t qn, const float* x, int64_t xn, int64_t d, float* out,
              std::vector<float>& packed) {
  if (qn * xn * d <= kSmallTileProducts) {
    small_dot_tile(q, qn, x, xn, d, out);
    return;
  }
  if (float32_tiles_available()) {
    pack_float32_rows(x, xn, d, packed);
    float32_dot_tile(q, qn, packed.data(), xn, d, out);
    return;
  }
  const auto m = static_cast<blasint>(qn), n = static_cast<blasint>(xn), kd = static_cast<blasint>(d);
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, kd, 1.0f, q, kd, x, kd, 0.0f, out, n);
}

// Dot products -> metric keys, in place, with the metric switch outside the loop so each
// loop vectorises.
void dots_to_keys(float* row, int64_t count, float query_term, const float* database_terms, Metric metric) {
  switch (metric) {
    case Metric::InnerProduct:  // the term is 1, or NaN for a non-finite row
      for (int64_t j = 0; j < count; ++j) row[j] *= database_terms[j];
      return;
    case Metric::Cosine:
      for (int64_t j = 0; j < count; ++j) row[j] *= query_term * database_terms[j];
      return;
    case Metric::L2:
      for (int64_t j = 0; j < count; ++j) row[j] = key_from_dot(row[j], query_term, database_terms[j], metric);
      return;
  }
}

// Keys of a row at or above `floor`.
CLIPADAPT_CLONE_INLINE int64_t count_at_least(const float* keys, int64_t count, float floor) {
  int64_t at_least = 0;
  for (int64_t j = 0; j < count; ++j) at_least += keys[j] >= floor;
  return at_least;
}

// Float32 bit patterns in the order of the values they encode (non-NaN values only).
CLIPADAPT_CLONE_INLINE uint32_t ordered_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

CLIPADAPT_CLONE_INLINE float value_of_ordered_bits(uint32_t ordered) {
  const uint32_t bits = (ordered & 0x80000000u) ? (ordered & 0x7fffffffu) : ~ordered;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// The k-th largest of the keys (-inf when fewer than k are not NaN): bisection over the
// ordered bit patterns, each step one vector count of the keys, so no branch depends on them.
CLIPADAPT_CLONE_INLINE float kth_largest_key(const float* keys, int64_t count, int64_t k) {
  uint32_t low = ordered_bits(-INFINITY), high = ordered_bits(INFINITY);
  if (count_at_least(keys, count, -INFINITY) < k) return -INFINITY;
  while (low < high) {  // count_at_least(low) >= k; the answer lies in [low, high]
    const uint32_t middle = low + (high - low + 1) / 2;
    if (count_at_least(keys, count, value_of_ordered_bits(middle)) >= k) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return value_of_ordered_bits(low);
}

// A list this wide or wider, not yet full, facing at least 4 times as many keys, first finds
// the k-th largest key: only keys at or above it can enter. Offered one by one, about
// k ln(count / k) of the keys would each pay a heap update of log k mispredicted compares (the
// IVF probe selection at nprobe 32: 35-wide lists over 1024 centroids).
constexpr int64_t kFloorMinWidth = 16;

// Blocks whose every key is below the current worst are rejected with one vector compare;
// that is almost every block once the heap has warmed up. In a block that passes, the keys
// that reach the worst are collected without branches and only those are offered: whether a
// key passes is data-dependent and unpredictable, so a branch per key would cost more than
// the heap updates themselves. NaN keys never pass (excluded self, or unchecked input).
CLIPADAPT_VECTOR_CLONES
void offer_row(const float* keys, int64_t count, int64_t first_index, Candidate* heap, int64_t k) {
  constexpr int64_t kBlock = 32;
  const bool filling = heap[0].index == kEmptyIndex && k >= kFloorMinWidth && count >= 4 * k;
  const float floor = filling ? kth_largest_key(keys, count, k) : -INFINITY;
  int64_t reaching[kBlock];
  for (int64_t start = 0; start < count; start += kBlock) {
    const int64_t stop = std::min(start + kBlock, count);
    const float worst = std::max(heap[0].key, floor);
    int reaches = 0;
    for (int64_t j = start; j < stop; ++j) reaches |= keys[j] >= worst;
    if (!reaches) continue;
    int64_t passed = 0;
    for (int64_t j = start; j < stop; ++j) {
      reaching[passed] = j;
      passed += keys[j] >= worst;
    }
    for (int64_t p = 0; p < passed; ++p) {
      const int64_t j = reaching[p];
      offer(heap, k, Candidate{keys[j], first_index + j});
    }
  }
}

namespace {

// Per-thread scratch space, reused across work items.
struct Workspace {
  std::vector<float> query_rows;     // 16-bit inputs widened to float32
  std::vector<float> database_rows;  // likewise
  std::vector<uint16_t> query_bits;  // bfloat16 queries of odd d, padded (avx512_tiles.h)
  std::vector<uint16_t> packed_rows; // bfloat16 database tile, packed
  std::vector<float> packed_floats;  // float32 database tile, packed for the AVX-512 tiles
  std::vector<float> keys;           // [query tile, database tile]
  std::vector<Candidate> heaps;      // [query tile, width]
  std::vector<Candidate> scratch;    // for FastPass::finish
};

// One fast pass: the best `width` database rows of each query row by the float32 key.
struct FastPass {
  const Matrix& queries;
  const Matrix& database;
  const int64_t* self_rows;  // database row to leave out for each query row, or null
  Metric metric;
  int64_t width;
  const std::vector<float>& query_terms;
  const std::vector<float>& database_terms;
  // Called with each query's final list (best first), in the pass's threads: the re-scoring
  // runs while the list is in cache, without a parallel region (and barrier) of its own.
  std::function<void(int64_t query, const Candidate* list, std::vector<Candidate>& scratch)> finish;
};

struct Plan {
  int64_t query_tile;
  int64_t query_tiles;
  int64_t slices;       // database slices per query tile
  int64_t slice_rows;   // rows per slice (a multiple of kDatabaseTile)
};

Plan make_plan(const FastPass& f, int threads) {
  Plan plan;
  const int64_t heap_bytes_per_query = f.width * int64_t(sizeof(Candidate));
  plan.query_tile = std::clamp<int64_t>(kHeapBytesPerThread / heap_bytes_per_query, 1, kQueryTile);
  plan.query_tiles = (f.queries.rows + plan.query_tile - 1) / plan.query_tile;
  const int64_t database_tiles = (f.database.rows + kDatabaseTile - 1) / kDatabaseTile;
  plan.slices = 1;
  if (plan.query_tiles < 2 * threads) {
    plan.slices = std::min<int64_t>(database_tiles, (2 * threads + plan.query_tiles - 1) / plan.query_tiles);
  }
  plan.slice_rows = ((database_tiles + plan.slices - 1) / plan.slices) * kDatabaseTile;
  plan.slices = (f.database.rows + plan.slice_rows - 1) / plan.slice_rows;
  return plan;
}

// The fast pass's dot-product tiles: bfloat16 rows on AVX-512 BF16 where the CPU has it,
// else rows as float32 through sgemm.
bool uses_bf16_tiles(const Matrix& m) { return m.dtype == DType::BFloat16 && bf16_tiles_available(); }

// Query rows [q0, q0 + qn) in the form the tile function reads.
const void* tile_queries(const FastPass& f, int64_t q0, int64_t qn, Workspace& ws) {
  const int64_t d = f.queries.cols;
  if (uses_bf16_tiles(f.queries)) return even_bf16_rows(f.queries.as<const uint16_t>() + q0 * d, qn, d, ws.query_bits);
  return rows_for_blas(f.queries, q0, qn, ws.query_rows);
}

// ws.keys[qn, xn] = the dot products of the tile's queries with database rows [x0, x0 + xn).
void database_tile(const FastPass& f, const void* queries, int64_t qn, int64_t x0, int64_t xn, Workspace& ws) {
  const int64_t d = f.queries.cols;
  if (uses_bf16_tiles(f.database)) {
    pack_bf16_rows(f.database.as<const uint16_t>() + x0 * d, xn, d, ws.packed_rows);
    bf16_dot_tile(static_cast<const uint16_t*>(queries), qn, ws.packed_rows.data(), xn, d, ws.keys.data());
  } else {
    dot_tile(static_cast<const float*>(queries), qn, rows_for_blas(f.database, x0, xn, ws.database_rows), xn, d,
             ws.keys.data(), ws.packed_floats);
  }
}

// Scans database rows [begin, end) for query rows [q0, q0 + qn), leaving each query's best
// `width` (unsorted heaps) in ws.heaps.
void search_slice(const FastPass& f, int64_t q0, int64_t qn, int64_t begin, int64_t end, Workspace& ws) {
  const int64_t width = f.width;
  ws.heaps.resize(qn * width);
  reset_heap(ws.heaps.data(), qn * width);
  ws.keys.resize(qn * kDatabaseTile);
  const void* queries = tile_queries(f, q0, qn, ws);
  for (int64_t x0 = begin; x0 < end; x0 += kDatabaseTile) {
    if (interrupt_requested()) throw Interrupted();  // the caller's thread answers Ctrl-C within a tile
    const int64_t xn = std::min(kDatabaseTile, end - x0);
    database_tile(f, queries, qn, x0, xn, ws);
    for (int64_t r = 0; r < qn; ++r) {
      float* row = ws.keys.data() + r * xn;
      const int64_t query = q0 + r;
      dots_to_keys(row, xn, f.query_terms[query], f.database_terms.data() + x0, f.metric);
      if (f.self_rows) {
        const int64_t self = f.self_rows[query];
        if (self >= x0 && self < x0 + xn) row[self - x0] = NAN;  // never selected
      }
      offer_row(row, xn, x0, ws.heaps.data() + r * width, width);
    }
  }
}

void finish_list(const FastPass& f, int64_t query, Candidate* heap, Workspace& ws) {
  std::sort(heap, heap + f.width, better);
  f.finish(query, heap, ws.scratch);
}

// One work item: a query tile against one database slice.
void search_item(const FastPass& f, const Plan& plan, int64_t item, std::vector<Candidate>& parked, Workspace& ws) {
  const int64_t tile = item / plan.slices, slice = item % plan.slices, width = f.width;
  const int64_t q0 = tile * plan.query_tile;
  const int64_t qn = std::min(plan.query_tile, f.queries.rows - q0);
  const int64_t begin = slice * plan.slice_rows;
  const int64_t end = std::min(begin + plan.slice_rows, f.database.rows);
  search_slice(f, q0, qn, begin, end, ws);
  for (int64_t r = 0; r < qn; ++r) {
    Candidate* heap = ws.heaps.data() + r * width;
    if (plan.slices == 1) {
      finish_list(f, q0 + r, heap, ws);
    } else {
      std::copy(heap, heap + width, parked.data() + ((q0 + r) * plan.slices + slice) * width);
    }
  }
}

void run_fast_pass(const FastPass& f) {
  const int threads = thread_count();
  const Plan plan = make_plan(f, threads);
  const int64_t width = f.width;
  // With several slices per query, each slice's heap is parked here and merged afterwards.
  std::vector<Candidate> parked(plan.slices > 1 ? f.queries.rows * plan.slices * width : 0);
  ExceptionCollector errors;
#pragma omp parallel num_threads(threads)
  {
    Workspace ws;
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < plan.query_tiles * plan.slices; ++item) {
      errors.run([&] { search_item(f, plan, item, parked, ws); });
    }
    if (plan.slices > 1) {
#pragma omp for schedule(static)
      for (int64_t query = 0; query < f.queries.rows; ++query) {
        errors.run([&] {
          Candidate* all = parked.data() + query * plan.slices * width;
          std::partial_sort(all, all + width, all + plan.slices * width, better);
          finish_list(f, query, all, ws);
        });
      }
    }
  }
  errors.rethrow_first();
}

// The queries still to search, as a matrix: all of them, or a gathered subset.
struct PendingQueries {
  std::vector<int64_t> rows;  // query rows of the problem
  std::vector<unsigned char> storage;
  Matrix matrix;
};

// Fast pass of the pending queries at `width`, then the exact re-scoring of each; returns
// the queries whose band did not fit in the list.
std::vector<int64_t> search_pending(const KnnProblem& p, PendingQueries& pending, int64_t width,
                                    const std::vector<double>& query_norms, const std::vector<double>& database_norms,
                                    const std::vector<float>& database_terms, const RowNormBounds& bounds) {
  const int64_t m = static_cast<int64_t>(pending.rows.size()), k = p.k;
  std::vector<double> pending_norms(m);
  for (int64_t i = 0; i < m; ++i) pending_norms[i] = query_norms[pending.rows[i]];
  const std::vector<float> query_terms = fast_terms(pending_norms, p.metric);
  const int64_t available = p.database.rows - (p.exclude_self ? 1 : 0);
  std::vector<char> retry(m, 0);
  const auto rescore = [&](int64_t i, const Candidate* list, std::vector<Candidate>& scratch) {
    const int64_t query = pending.rows[i];
    RescoreTarget target{&pending.matrix, i,     pending_norms[i], &p.database,        database_norms.data(),
                         nullptr,         p.metric, k,             bounds,             0.0,
                         width >= available, uses_bf16_tiles(p.database)};
    retry[i] = !rescore_query(target, list, width, p.scores.as<float>() + query * k,
                              p.indices.as<int64_t>() + query * k, scratch);
  };
  run_fast_pass(FastPass{pending.matrix, p.database, p.exclude_self ? pending.rows.data() : nullptr, p.metric,
                         width, query_terms, database_terms, rescore});
  std::vector<int64_t> again;
  for (int64_t i = 0; i < m; ++i) {
    if (retry[i]) again.push_back(pending.rows[i]);
  }
  return again;
}

}  // namespace

void knn_cpu(const KnnProblem& p) {
  validate(p);
  if (p.queries.rows == 0) return;
  ensure_single_threaded_blas();
  const bool same_rows = p.queries.data == p.database.data && p.queries.rows == p.database.rows;
  const std::vector<double> database_norms = canonical_squared_norms(p.database);
  const std::vector<double> query_norms = same_rows ? database_norms : canonical_squared_norms(p.queries);
  const std::vector<float> database_terms = fast_terms(database_norms, p.metric);
  RowNormBounds bounds;
  for (double squared : database_norms) bounds.include(squared);

  PendingQueries pending;
  pending.rows.resize(p.queries.rows);
  for (int64_t i = 0; i < p.queries.rows; ++i) pending.rows[i] = i;
  pending.matrix = p.queries;
  const int64_t available = p.database.rows - (p.exclude_self ? 1 : 0);
  for (int64_t width = initial_width(p.k, available);; width = wider_width(width, available)) {
    std::vector<int64_t> again =
        search_pending(p, pending, width, query_norms, database_norms, database_terms, bounds);
    if (again.empty()) break;
    pending.rows = std::move(again);
    pending.matrix = gather_rows(p.queries, pending.rows, pending.storage);
  }
}

}  // namespace clipadapt::knn
