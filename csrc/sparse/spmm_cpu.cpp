// CPU SpMM and the dense column operations of block CG, OpenMP over rows.
#include <algorithm>
#include <vector>

#include "core/parallel.h"
#include "core/simd.h"
#include "sparse/spmm_row.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {
namespace {

// How far ahead the gathers are started: about 12 KiB of gathered rows covered the latency
// best in block CG at n = 50k, C = 100 (the float32 solve 15% faster than at 8 entries ahead,
// float64 about 3%); never fewer than 8 entries (the distance long rows had before), never
// more than 64.
constexpr int64_t kPrefetchBytes = 12 << 10;

template <typename T>
CLIPADAPT_CLONE_INLINE int64_t prefetch_distance(int64_t columns) {
  return std::clamp<int64_t>(kPrefetchBytes / std::max<int64_t>(columns * int64_t(sizeof(T)), 1), 8, 64);
}

// Starts the gathers of a later entry early: they are latency bound.
template <typename Index, typename T>
CLIPADAPT_CLONE_INLINE void prefetch_row_of(const Index* indices, int64_t entry, int64_t nnz, const T* x,
                                            int64_t columns) {
  if (entry < nnz) prefetch_bytes(x + indices[entry] * columns, columns * int64_t(sizeof(T)));
}

// Any number of columns: the sums live in memory.
template <typename Index, typename T>
CLIPADAPT_CLONE_INLINE void accumulate_in_memory(const Index* __restrict indices, const T* __restrict values,
                                                 int64_t begin, int64_t end, int64_t nnz, const T* __restrict x,
                                                 int64_t columns, T* __restrict sum) {
  const int64_t ahead = prefetch_distance<T>(columns);
  for (int64_t c = 0; c < columns; ++c) sum[c] = T(0);
  for (int64_t e = begin; e < end; ++e) {
    prefetch_row_of(indices, e + ahead, nnz, x, columns);
    const T value = values[e];
    const T* __restrict row = x + indices[e] * columns;
    for (int64_t c = 0; c < columns; ++c) sum[c] += value * row[c];
  }
}

// A row of at most Chunks registers of columns (and at least one): the sums stay in registers
// across the row's entries, where sums in memory chain every entry's adds through a store and
// a reload. The last chunk ends at the row's end, overlapping the one before it when the
// columns are not a multiple of the lanes; overlapping lanes sum the same products in the same
// order, so they hold the same bits, and every sum is the one the loop in memory gives.
template <int Chunks, typename Index, typename T>
CLIPADAPT_CLONE_INLINE void accumulate_in_registers(const Index* __restrict indices, const T* __restrict values,
                                                    int64_t begin, int64_t end, int64_t nnz, const T* __restrict x,
                                                    int64_t columns, T* __restrict sum) {
  constexpr int64_t kLanes = kLanesOf<T>;
  int64_t starts[Chunks];
  for (int chunk = 0; chunk < Chunks; ++chunk) starts[chunk] = std::min<int64_t>(chunk * kLanes, columns - kLanes);
  Lanes<T> sums[Chunks] = {};
  const int64_t ahead = prefetch_distance<T>(columns);
  for (int64_t e = begin; e < end; ++e) {
    prefetch_row_of(indices, e + ahead, nnz, x, columns);
    const Lanes<T> value = Lanes<T>{} + values[e];
    const T* __restrict row = x + indices[e] * columns;
    for (int chunk = 0; chunk < Chunks; ++chunk) {
      Lanes<T> gathered;
      load_lanes(gathered, row + starts[chunk]);
      sums[chunk] += value * gathered;
    }
  }
  for (int chunk = 0; chunk < Chunks; ++chunk) store_lanes(sum + starts[chunk], sums[chunk]);
}

// Rows of up to 16 registers of columns (256 float32 or 128 float64 columns: 16 registers of
// sums and two more fit the 32 AVX-512 registers) are summed in registers.
constexpr int kMaxRegisterChunks = 16;

template <int Chunks, typename Index, typename T>
CLIPADAPT_CLONE_INLINE void accumulate_in_registers_of(int64_t chunks, const Index* indices, const T* values,
                                                       int64_t begin, int64_t end, int64_t nnz, const T* x,
                                                       int64_t columns, T* sum) {
  if (chunks == Chunks) return accumulate_in_registers<Chunks>(indices, values, begin, end, nnz, x, columns, sum);
  if constexpr (Chunks < kMaxRegisterChunks) {
    accumulate_in_registers_of<Chunks + 1>(chunks, indices, values, begin, end, nnz, x, columns, sum);
  }
}

template <typename Index, typename T>
CLIPADAPT_CLONE_INLINE void accumulate_row_body(const Index* indices, const T* values, int64_t begin, int64_t end,
                                                int64_t nnz, const T* x, int64_t columns, T* sum) {
  const int64_t chunks = (columns + kLanesOf<T> - 1) / kLanesOf<T>;
  if (columns < kLanesOf<T> || chunks > kMaxRegisterChunks) {
    accumulate_in_memory(indices, values, begin, end, nnz, x, columns, sum);
  } else {
    accumulate_in_registers_of<1>(chunks, indices, values, begin, end, nnz, x, columns, sum);
  }
}

}  // namespace

// One clone set per (column id, value) type: target_clones applies to plain functions only.
#define CLIPADAPT_ACCUMULATE_ROW(Index, T)                                                                     \
  CLIPADAPT_VECTOR_CLONES                                                                                      \
  void accumulate_row(const Index* indices, const T* values, int64_t begin, int64_t end, int64_t nnz,          \
                      const T* x, int64_t columns, T* sum) {                                                   \
    accumulate_row_body(indices, values, begin, end, nnz, x, columns, sum);                                    \
  }
CLIPADAPT_ACCUMULATE_ROW(int64_t, float)
CLIPADAPT_ACCUMULATE_ROW(int64_t, double)
CLIPADAPT_ACCUMULATE_ROW(int32_t, float)
CLIPADAPT_ACCUMULATE_ROW(int32_t, double)
#undef CLIPADAPT_ACCUMULATE_ROW

namespace {

template <typename T>
void spmm_rows(const SpmmProblem& p) {
  const int64_t columns = p.x.cols;
  const auto* indptr = p.a.indptr.as<const int64_t>();
  const auto* indices = p.a.indices.as<const int64_t>();
  const auto* values = p.a.values.as<const T>();
  const auto* x = p.x.as<const T>();
  const T* y = p.y.data ? p.y.as<const T>() : nullptr;
  auto* out = p.out.as<T>();
  const T scale_ax = static_cast<T>(p.scale_ax), scale_y = static_cast<T>(p.scale_y);
#pragma omp parallel num_threads(thread_count())
  {
    std::vector<T> sum(columns);
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < p.a.rows; ++i) {
      accumulate_row(indices, values, indptr[i], indptr[i + 1], p.a.nnz(), x, columns, sum.data());
      T* target = out + i * columns;
      for (int64_t c = 0; c < columns; ++c) {
        target[c] = (y ? scale_y * y[i * columns + c] : T(0)) + scale_ax * sum[c];
      }
    }
  }
}

}  // namespace

void spmm_cpu(const SpmmProblem& p) {
  validate(p);
  if (p.a.values.dtype == DType::Float64) {
    spmm_rows<double>(p);
  } else {
    spmm_rows<float>(p);
  }
}

}  // namespace clipadapt::sparse
