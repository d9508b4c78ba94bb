// CPU SpMM and the dense column operations of block CG, OpenMP over rows.
#include <algorithm>
#include <vector>

#include "core/parallel.h"
#include "core/simd.h"
#include "sparse/spmm_row.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {
namespace {

constexpr int64_t kPrefetchAhead = 8;

// The gathered rows are contiguous, so the inner loop is a vector FMA; target_clones picks
// AVX-512 or AVX2 at run time (the wheel itself targets x86-64-v2).
template <typename Index, typename T>
inline void accumulate_row_body(const Index* __restrict indices, const T* __restrict values, int64_t begin,
                                int64_t end, int64_t nnz, const T* __restrict x, int64_t columns,
                                T* __restrict sum) {
  for (int64_t c = 0; c < columns; ++c) sum[c] = T(0);
  for (int64_t e = begin; e < end; ++e) {
    if (e + kPrefetchAhead < nnz) {  // start the gathers of a later entry early: they are latency bound
      const char* ahead = reinterpret_cast<const char*>(x + indices[e + kPrefetchAhead] * columns);
      for (int64_t byte = 0; byte < columns * int64_t(sizeof(T)); byte += 64) __builtin_prefetch(ahead + byte);
    }
    const T value = values[e];
    const T* __restrict row = x + indices[e] * columns;
    for (int64_t c = 0; c < columns; ++c) sum[c] += value * row[c];
  }
}

}  // namespace

CLIPADAPT_VECTOR_CLONES
void accumulate_row(const int64_t* indices, const float* values, int64_t begin, int64_t end, int64_t nnz,
                    const float* x, int64_t columns, float* sum) {
  accumulate_row_body(indices, values, begin, end, nnz, x, columns, sum);
}

CLIPADAPT_VECTOR_CLONES
void accumulate_row(const int64_t* indices, const double* values, int64_t begin, int64_t end, int64_t nnz,
                    const double* x, int64_t columns, double* sum) {
  accumulate_row_body(indices, values, begin, end, nnz, x, columns, sum);
}

CLIPADAPT_VECTOR_CLONES
void accumulate_row(const int32_t* indices, const float* values, int64_t begin, int64_t end, int64_t nnz,
                    const float* x, int64_t columns, float* sum) {
  accumulate_row_body(indices, values, begin, end, nnz, x, columns, sum);
}

CLIPADAPT_VECTOR_CLONES
void accumulate_row(const int32_t* indices, const double* values, int64_t begin, int64_t end, int64_t nnz,
                    const double* x, int64_t columns, double* sum) {
  accumulate_row_body(indices, values, begin, end, nnz, x, columns, sum);
}

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
