// CPU block CG: the dense [n, C] column operations of block_cg.h over std::vector storage.
#include <algorithm>
#include <vector>

#include "sparse/block_cg.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {
namespace {

// Rows per partial sum of a column dot product. Fixed (not per thread), so the sums are
// the same whatever the thread count.
constexpr int64_t kDotBlockRows = 1024;

// A [rows, C] row-major matrix: the caller's (x, b) or a workspace buffer.
template <typename T>
struct Dense {
  T* data;
};

template <typename T>
class CpuOps {
 public:
  explicit CpuOps(const ConjugateGradientProblem& p)
      : p_(p), rows_(p.b.rows), columns_(p.b.cols), size_(rows_ * columns_), storage_(3 * size_),
        x_{p.x.as<T>()}, b_{p.b.as<T>()}, r_{storage_.data()}, direction_{storage_.data() + size_},
        product_{storage_.data() + 2 * size_} {}

  Dense<T>& solution() { return x_; }
  Dense<T>& residual() { return r_; }
  Dense<T>& direction() { return direction_; }
  Dense<T>& product() { return product_; }
  const Dense<T>& rhs() { return b_; }

  void zero(Dense<T>& m) { std::fill(m.data, m.data + size_, T(0)); }
  void copy(const Dense<T>& from, Dense<T>& to) { std::copy(from.data, from.data + size_, to.data); }

  void column_dots(const Dense<T>& a, const Dense<T>& b, std::vector<double>& out) {
    const int64_t blocks = (rows_ + kDotBlockRows - 1) / kDotBlockRows;
    std::vector<double> partial(blocks * columns_, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
      double* sums = partial.data() + block * columns_;
      const int64_t stop = std::min(rows_, (block + 1) * kDotBlockRows);
      for (int64_t i = block * kDotBlockRows; i < stop; ++i) {
        const T* a_row = a.data + i * columns_;
        const T* b_row = b.data + i * columns_;
        for (int64_t c = 0; c < columns_; ++c) sums[c] += double(a_row[c]) * double(b_row[c]);
      }
    }
    std::fill(out.begin(), out.end(), 0.0);
    for (int64_t block = 0; block < blocks; ++block)
      for (int64_t c = 0; c < columns_; ++c) out[c] += partial[block * columns_ + c];
  }

  void apply(const Dense<T>& p, Dense<T>& q) {
    SpmmProblem spmm;
    spmm.a = p_.s;
    spmm.x = view(p);
    spmm.y = view(p);
    spmm.out = view(q);
    spmm.scale_ax = -p_.alpha;
    spmm.scale_y = 1.0;
    spmm_cpu(spmm);
  }

  void advance(Dense<T>& x, Dense<T>& r, const Dense<T>& p, const Dense<T>& q, const std::vector<double>& steps) {
    const std::vector<T> step(steps.begin(), steps.end());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows_; ++i) {
      for (int64_t c = 0; c < columns_; ++c) {
        x.data[i * columns_ + c] += step[c] * p.data[i * columns_ + c];
        r.data[i * columns_ + c] -= step[c] * q.data[i * columns_ + c];
      }
    }
  }

  void redirect(Dense<T>& p, const Dense<T>& r, const std::vector<double>& betas) {
    const std::vector<T> beta(betas.begin(), betas.end());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows_; ++i) {
      for (int64_t c = 0; c < columns_; ++c) {
        p.data[i * columns_ + c] = r.data[i * columns_ + c] + beta[c] * p.data[i * columns_ + c];
      }
    }
  }

  void write_results(const std::vector<int64_t>& iterations, const std::vector<double>& residuals) {
    std::copy(iterations.begin(), iterations.end(), p_.iterations.as<int64_t>());
    std::copy(residuals.begin(), residuals.end(), p_.residuals.as<double>());
  }

 private:
  Matrix view(const Dense<T>& m) const {
    Matrix out;
    out.data = m.data;
    out.dtype = p_.s.values.dtype;
    out.rows = rows_;
    out.cols = columns_;
    return out;
  }

  const ConjugateGradientProblem& p_;
  int64_t rows_, columns_, size_;
  std::vector<T> storage_;  // r, direction, product
  Dense<T> x_, b_, r_, direction_, product_;
};

template <typename T>
void solve(const ConjugateGradientProblem& p) {
  CpuOps<T> ops(p);
  block_conjugate_gradient(p, ops);
}

}  // namespace

void conjugate_gradient_cpu(const ConjugateGradientProblem& p) {
  validate(p);
  if (p.s.values.dtype == DType::Float64) {
    solve<double>(p);
  } else {
    solve<float>(p);
  }
}

}  // namespace clipadapt::sparse
