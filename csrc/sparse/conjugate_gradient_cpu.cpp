// CPU block CG: the dense [n, C] column operations of block_cg.h, with the column dot
// products fused into the SpMM and update passes, on a locality-ordered copy of S.
//
// Block CG is memory bound here: each SpMM gathers a C-wide row of P per nonzero. Relabelling
// the nodes in reverse Cuthill-McKee order puts graph neighbours at nearby rows, so the
// gathered rows are mostly still in cache (about 2x fewer cache misses on k-NN graphs).
#include <algorithm>
#include <limits>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include "core/host_memory.h"
#include "core/parallel.h"
#include "sparse/block_cg.h"
#include "sparse/spmm_row.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {
namespace {

// Rows per partial sum of a column dot product. Fixed (not per thread), so the sums are the
// same whatever the thread count.
constexpr int64_t kDotBlockRows = 1024;

// A [rows, C] row-major matrix in the relabelled order: a workspace buffer, or the caller's b
// read in place through the relabelling (relabelled row i is stored row order[i]); b is read
// once, so it is not copied. The solution, read and written every iteration, is solved in a
// buffer of its own and put back in the caller's order at the end.
template <typename T>
struct Dense {
  T* data;
  int64_t columns;
  const int64_t* order = nullptr;  // null: stored in the relabelled order
  T* row(int64_t i) const { return data + (order ? order[i] : i) * columns; }
};

// S relabelled for locality, column ids as Index (int32 whenever n allows).
template <typename T, typename Index>
struct LocalCsr {
  const int64_t* indptr;
  const Index* indices;
  const T* values;
  int64_t nnz;
};

template <typename T, typename Index>
class CpuOps {
 public:
  // s and `order` (relabelled row -> row of the caller's x and b) from PermutedSystem.
  CpuOps(const ConjugateGradientProblem& p, const LocalCsr<T, Index>& s, const int64_t* order)
      : p_(p), s_(s), rows_(p.b.rows), columns_(p.b.cols), size_(rows_ * columns_),
        blocks_((rows_ + kDotBlockRows - 1) / kDotBlockRows), storage_(allocate_workspace<T>(4 * size_)),
        partial_(blocks_ * columns_), order_(order), b_{p.b.as<T>(), columns_, order},
        x_{storage_.get(), columns_}, r_{storage_.get() + size_, columns_},
        direction_{storage_.get() + 2 * size_, columns_}, product_{storage_.get() + 3 * size_, columns_} {}

  Dense<T>& solution() { return x_; }
  Dense<T>& residual() { return r_; }
  Dense<T>& direction() { return direction_; }
  Dense<T>& product() { return product_; }
  const Dense<T>& rhs() { return b_; }

  // The workspace starts uninitialised: these first writes fault its pages in on every thread.
  void zero(Dense<T>& m) {
    for_each_row([&](int64_t i) { std::fill_n(m.row(i), columns_, T(0)); });
  }
  void copy(const Dense<T>& from, const Dense<T>& to) {
    for_each_row([&](int64_t i) { std::copy_n(from.row(i), columns_, to.row(i)); });
  }

  void column_dots(const Dense<T>& a, const Dense<T>& b, std::vector<double>& out) {
    for_each_block(out, [&](int64_t i, double* sums) { add_products(a.row(i), b.row(i), sums); });
  }

  // q = p - alpha S p; pq = column dots of p and q.
  void apply(const Dense<T>& p, Dense<T>& q, std::vector<double>& pq) {
    const T alpha = static_cast<T>(p_.alpha);
    for_each_block(pq, [&](int64_t i, double* sums) {
      T* q_row = q.row(i);
      accumulate_row(s_.indices, s_.values, s_.indptr[i], s_.indptr[i + 1], s_.nnz, p.data, columns_, q_row);
      const T* p_row = p.row(i);
      for (int64_t c = 0; c < columns_; ++c) q_row[c] = p_row[c] - alpha * q_row[c];
      add_products(p_row, q_row, sums);
    });
  }

  // r -= step_c q; rr = column dots of r with itself.
  void advance(Dense<T>& r, const Dense<T>& q, const std::vector<double>& steps, std::vector<double>& rr) {
    const std::vector<T> step(steps.begin(), steps.end());
    for_each_block(rr, [&](int64_t i, double* sums) {
      T* r_row = r.row(i);
      const T* q_row = q.row(i);
      for (int64_t c = 0; c < columns_; ++c) r_row[c] -= step[c] * q_row[c];
      add_products(r_row, r_row, sums);
    });
  }

  // x += step_c p, then p = r + beta_c p.
  void redirect(Dense<T>& x, Dense<T>& p, const Dense<T>& r, const std::vector<double>& steps,
                const std::vector<double>& betas) {
    const std::vector<T> step(steps.begin(), steps.end()), beta(betas.begin(), betas.end());
    for_each_row([&](int64_t i) {
      T* x_row = x.row(i);
      T* p_row = p.row(i);
      const T* r_row = r.row(i);
      for (int64_t c = 0; c < columns_; ++c) {
        x_row[c] += step[c] * p_row[c];
        p_row[c] = r_row[c] + beta[c] * p_row[c];
      }
    });
  }

  // The solution in the caller's order, and the per-column outputs.
  void write_results(const std::vector<int64_t>& iterations, const std::vector<double>& residuals) {
    const Dense<T> caller_x{p_.x.as<T>(), columns_, order_};
    copy(x_, caller_x);
    std::copy(iterations.begin(), iterations.end(), p_.iterations.as<int64_t>());
    std::copy(residuals.begin(), residuals.end(), p_.residuals.as<double>());
  }

 private:
  void add_products(const T* a, const T* b, double* sums) const {
    for (int64_t c = 0; c < columns_; ++c) sums[c] += double(a[c]) * double(b[c]);
  }

  template <typename RowWork>
  void for_each_row(RowWork&& row_work) {
#pragma omp parallel for schedule(static) num_threads(thread_count())
    for (int64_t i = 0; i < rows_; ++i) row_work(i);
  }

  // Runs row_work(i, block partial sums) for every row, a fixed block of rows per task, then
  // adds the block partials in block order into out: deterministic for any thread count.
  template <typename RowWork>
  void for_each_block(std::vector<double>& out, RowWork&& row_work) {
    std::fill(partial_.begin(), partial_.end(), 0.0);
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count())
    for (int64_t block = 0; block < blocks_; ++block) {
      const int64_t stop = std::min(rows_, (block + 1) * kDotBlockRows);
      for (int64_t i = block * kDotBlockRows; i < stop; ++i) row_work(i, partial_.data() + block * columns_);
    }
    std::fill(out.begin(), out.end(), 0.0);
    for (int64_t block = 0; block < blocks_; ++block)
      for (int64_t c = 0; c < columns_; ++c) out[c] += partial_[block * columns_ + c];
  }

  const ConjugateGradientProblem& p_;
  LocalCsr<T, Index> s_;
  int64_t rows_, columns_, size_, blocks_;
  HostBuffer<T> storage_;  // x, r, direction, product
  std::vector<double> partial_;
  const int64_t* order_;
  Dense<T> b_, x_, r_, direction_, product_;
};

// Reverse Cuthill-McKee: breadth-first from a lowest-degree node of each component,
// neighbours by increasing degree (then id), the whole order reversed. order[new] = old.
std::vector<int64_t> reverse_cuthill_mckee(const Csr& s) {
  const int64_t n = s.rows;
  const auto* indptr = s.indptr.as<const int64_t>();
  const auto* indices = s.indices.as<const int64_t>();
  auto degree = [&](int64_t node) { return indptr[node + 1] - indptr[node]; };
  auto by_degree = [&](int64_t a, int64_t b) { return degree(a) != degree(b) ? degree(a) < degree(b) : a < b; };
  std::vector<int64_t> starts(n), order;
  std::iota(starts.begin(), starts.end(), 0);
  std::stable_sort(starts.begin(), starts.end(), by_degree);
  std::vector<char> seen(n, 0);
  order.reserve(n);
  for (int64_t start : starts) {
    if (seen[start]) continue;
    seen[start] = 1;
    size_t head = order.size();
    order.push_back(start);
    for (; head < order.size(); ++head) {
      const int64_t node = order[head];
      const size_t fresh = order.size();
      for (int64_t e = indptr[node]; e < indptr[node + 1]; ++e) {
        if (!seen[indices[e]]) {
          seen[indices[e]] = 1;
          order.push_back(indices[e]);
        }
      }
      std::sort(order.begin() + fresh, order.end(), by_degree);
    }
  }
  std::reverse(order.begin(), order.end());
  return order;
}

// S relabelled by `order`: S' = P S P^T. The solver reads B and writes X through `order`
// (Dense::order), so the system is solved as P B and comes back as X = P^T X'.
template <typename T, typename Index>
class PermutedSystem {
 public:
  PermutedSystem(const ConjugateGradientProblem& p, std::vector<int64_t> order)
      : p_(p), order_(std::move(order)), rank_(order_.size()) {
    for (size_t r = 0; r < order_.size(); ++r) rank_[order_[r]] = static_cast<int64_t>(r);
    permute_matrix();
  }

  LocalCsr<T, Index> matrix() const {
    return {indptr_.data(), indices_.data(), values_.data(), static_cast<int64_t>(indices_.size())};
  }

  const int64_t* order() const { return order_.data(); }

 private:
  // Row r of S' is row order[r] of S with its column ids relabelled, its entries left in
  // their stored order (sorting them by new id would cost more than the locality it buys).
  void permute_matrix() {
    const auto* indptr = p_.s.indptr.as<const int64_t>();
    const auto* indices = p_.s.indices.as<const int64_t>();
    const auto* values = p_.s.values.as<const T>();
    const int64_t n = p_.s.rows;
    indptr_.assign(n + 1, 0);
    for (int64_t r = 0; r < n; ++r) indptr_[r + 1] = indptr_[r] + indptr[order_[r] + 1] - indptr[order_[r]];
    indices_.resize(indptr_[n]);
    values_.resize(indptr_[n]);
#pragma omp parallel for schedule(static) num_threads(thread_count())
    for (int64_t r = 0; r < n; ++r) {
      const int64_t first = indptr[order_[r]], count = indptr_[r + 1] - indptr_[r];
      for (int64_t j = 0; j < count; ++j) indices_[indptr_[r] + j] = static_cast<Index>(rank_[indices[first + j]]);
      std::copy_n(values + first, count, values_.data() + indptr_[r]);
    }
  }

  const ConjugateGradientProblem& p_;
  std::vector<int64_t> order_, rank_;
  std::vector<int64_t> indptr_;
  std::vector<Index> indices_;
  std::vector<T> values_;
};

template <typename T, typename Index>
void solve(const ConjugateGradientProblem& p) {
  const PermutedSystem<T, Index> permuted(p, reverse_cuthill_mckee(p.s));
  CpuOps<T, Index> ops(p, permuted.matrix(), permuted.order());
  block_conjugate_gradient(p, ops);
}

template <typename T>
void solve(const ConjugateGradientProblem& p) {
  if (p.s.rows <= std::numeric_limits<int32_t>::max()) {
    solve<T, int32_t>(p);
  } else {
    solve<T, int64_t>(p);
  }
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
