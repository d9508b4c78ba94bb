// CPU SpMM and the dense column operations of block CG, OpenMP over rows.
#include <algorithm>
#include <vector>

#include "sparse/sparse.h"

namespace clipadapt::sparse {
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
#pragma omp parallel
  {
    std::vector<T> sum(columns);
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < p.a.rows; ++i) {
      std::fill(sum.begin(), sum.end(), T(0));
      for (int64_t e = indptr[i]; e < indptr[i + 1]; ++e) {
        const T value = values[e];
        const T* row = x + indices[e] * columns;
        for (int64_t c = 0; c < columns; ++c) sum[c] += value * row[c];
      }
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
