// Sparse graph primitives for label propagation: the normalised affinity of a k-NN graph in
// CSR, CSR x dense products (SpMM), and a block conjugate-gradient solver built on SpMM.
// Every entry point has a CPU and a CUDA kernel with the same signature.
#pragma once
#include <cstdint>

#include "core/array.h"

namespace clipadapt::sparse {

enum class AffinityKernel {
  ShiftedCosine,  // ((1 + cos) / 2)^gamma  (ReCLIP, gamma = 1)
  CosinePower,    // max(cos, 0)^gamma      (Iscen et al., gamma = 3)
};

enum class Symmetrize {
  Mean,  // W = (A + A^T) / 2
  Sum,   // W = A + A^T
};

// A square CSR matrix over caller-owned arrays: indptr int64 [rows + 1], indices int64 [nnz],
// values float32 or float64 [nnz]. Within a row, column indices are strictly increasing.
struct Csr {
  Matrix indptr;
  Matrix indices;
  Matrix values;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t nnz() const { return indices.rows; }
};

// From a directed k-NN graph (row i's neighbours and their cosines) to
// S = D^-1/2 W D^-1/2 (or W itself without normalisation), where W symmetrises the kernel
// affinities A, duplicate edges are summed and the diagonal is zero. A node of degree 0 gets
// an empty row.
struct AffinityProblem {
  Matrix neighbors;     // int64 [n, k], entries in [0, n)
  Matrix similarities;  // float32 [n, k], cosine of each edge
  AffinityKernel kernel = AffinityKernel::ShiftedCosine;
  double gamma = 1.0;
  Symmetrize symmetrize = Symmetrize::Mean;
  bool normalize = true;
  // Outputs; indices/values have capacity for 2 n k entries (the most W can hold).
  Csr out;               // out.values: float32 or float64
  Matrix degrees;        // float64 [n]: row sums of W
  void* stream = nullptr;
};

// Returns the number of stored entries (the first nnz of out.indices / out.values are valid).
int64_t affinity_cpu(const AffinityProblem& problem);
int64_t affinity_cuda(const AffinityProblem& problem);

// out = out_scale_y * y + scale_ax * (A x) for A [rows, cols] CSR, x [cols, C], y/out [rows, C].
// y may alias out, or be absent (data == nullptr). Values, x, y and out share one float dtype.
struct SpmmProblem {
  Csr a;
  Matrix x;
  Matrix y;
  Matrix out;
  double scale_ax = 1.0;
  double scale_y = 0.0;
  void* stream = nullptr;
};

void spmm_cpu(const SpmmProblem& problem);
void spmm_cuda(const SpmmProblem& problem);

// Solves (I - alpha S) X = B for all C columns of B at once: lock-step CG with per-column step
// sizes, mathematically C independent CG solves started from 0. Column c stops when
// ||r_c|| <= tol ||b_c|| (checked before each iteration), all stop after max_iter iterations.
struct ConjugateGradientProblem {
  Csr s;               // symmetric [n, n]
  Matrix b;            // [n, C], same float dtype as s.values
  double alpha = 0.99;
  int64_t max_iter = 20;
  double tol = 1e-6;
  Matrix x;            // out: [n, C]
  Matrix iterations;   // out: int64 [C]
  Matrix residuals;    // out: float64 [C], final ||r_c|| / ||b_c|| (0 where b_c = 0)
  void* stream = nullptr;
};

void conjugate_gradient_cpu(const ConjugateGradientProblem& problem);
void conjugate_gradient_cuda(const ConjugateGradientProblem& problem);

// Shape and dtype checks shared by both devices (throw InvalidArgument / UnsupportedType).
void validate(const AffinityProblem& problem);
void validate(const SpmmProblem& problem);
void validate(const ConjugateGradientProblem& problem);

}  // namespace clipadapt::sparse
