// Edge-weight and normalisation rules shared by the CPU and CUDA affinity kernels.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/half.h"  // CLIPADAPT_HD
#include "sparse/sparse.h"

namespace clipadapt::sparse {

// COO keys of the CUDA affinity's sort: entry (row, col) of an n-node graph is row * n + col;
// a self edge gets n * n, which sorts after every real entry and is dropped.
CLIPADAPT_HD int64_t edge_key(int64_t row, int64_t col, int64_t n) { return row == col ? n * n : row * n + col; }
CLIPADAPT_HD int64_t edge_row(int64_t key, int64_t n) { return key / n; }
CLIPADAPT_HD int64_t edge_column(int64_t key, int64_t n) { return key % n; }

// Kernel weight of an edge from its cosine similarity.
CLIPADAPT_HD double edge_weight(float cosine, AffinityKernel kernel, double gamma) {
  const double base = kernel == AffinityKernel::ShiftedCosine ? (1.0 + double(cosine)) / 2.0
                                                              : (cosine > 0.0f ? double(cosine) : 0.0);
  return gamma == 1.0 ? base : pow(base, gamma);
}

// Symmetrisation factor applied to A + A^T.
CLIPADAPT_HD double symmetrize_scale(Symmetrize symmetrize) { return symmetrize == Symmetrize::Mean ? 0.5 : 1.0; }

// D^-1/2 W D^-1/2 for one entry; isolated nodes (degree 0) give 0, never NaN.
CLIPADAPT_HD double normalized_weight(double weight, double degree_row, double degree_col) {
  return degree_row > 0.0 && degree_col > 0.0 ? weight / sqrt(degree_row * degree_col) : 0.0;
}

}  // namespace clipadapt::sparse
