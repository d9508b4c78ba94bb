// Block (lock-step) conjugate gradient for (I - alpha S) X = B, generic over the device.
//
// All C columns advance together through shared SpMMs, each with its own step size and
// direction update, so the iterates are those of C independent CG solves from X = 0 (the
// sequence scipy.sparse.linalg.cg follows). Per-column scalars live on the host; `Ops`
// supplies the O(n C) work:
//   copy(from, to), zero(m)                       whole [n, C] matrices
//   column_dots(a, b, std::vector<double>&)       sum_i a[i,c] b[i,c], deterministic
//   apply(p, q, pq)                               q = p - alpha S p, and pq = column_dots(p, q)
//   advance(r, q, steps, rr)                      r -= step_c q, and rr = column_dots(r, r)
//   redirect(x, p, r, steps, betas)               x += step_c p, then p = r + beta_c p
//   write_results(iterations, residuals)          per-column outputs (and the solution, where the
//                                                 device solved it in a buffer of its own)
// apply and advance return their dot products so that a device can fuse them into the pass;
// the solution's update waits for redirect, which reads p anyway (one pass over [n, C] fewer).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {

template <typename Ops>
void block_conjugate_gradient(const ConjugateGradientProblem& p, Ops& ops) {
  const auto columns = static_cast<size_t>(p.b.cols);
  auto& x = ops.solution();
  auto& r = ops.residual();
  auto& direction = ops.direction();
  auto& product = ops.product();
  std::vector<double> b_norm(columns), rr(columns), rr_next(columns), pq(columns), steps(columns), betas(columns);
  std::vector<int64_t> iterations(columns, 0);
  std::vector<char> active(columns);

  ops.zero(x);
  ops.copy(ops.rhs(), r);
  ops.column_dots(r, r, rr);
  for (size_t c = 0; c < columns; ++c) {
    b_norm[c] = std::sqrt(rr[c]);
    active[c] = b_norm[c] > 0.0 && std::sqrt(rr[c]) > p.tol * b_norm[c];
  }
  ops.copy(r, direction);
  for (int64_t iteration = 0; iteration < p.max_iter; ++iteration) {
    if (interrupt_requested()) throw Interrupted();
    bool any_active = false;
    for (size_t c = 0; c < columns; ++c) any_active = any_active || active[c];
    if (!any_active) break;
    ops.apply(direction, product, pq);
    for (size_t c = 0; c < columns; ++c) {
      if (active[c] && !(pq[c] > 0.0)) active[c] = 0;  // breakdown: the operator is not positive definite
      steps[c] = active[c] ? rr[c] / pq[c] : 0.0;
    }
    ops.advance(r, product, steps, rr_next);
    for (size_t c = 0; c < columns; ++c) {
      if (!active[c]) {
        betas[c] = 0.0;
        continue;
      }
      ++iterations[c];
      betas[c] = rr_next[c] / rr[c];
      rr[c] = rr_next[c];
      active[c] = std::sqrt(rr[c]) > p.tol * b_norm[c];
    }
    ops.redirect(x, direction, r, steps, betas);
  }
  std::vector<double> residuals(columns);
  for (size_t c = 0; c < columns; ++c) residuals[c] = b_norm[c] > 0.0 ? std::sqrt(rr[c]) / b_norm[c] : 0.0;
  ops.write_results(iterations, residuals);
}

}  // namespace clipadapt::sparse
