// k-means++ rules shared by the CPU kernel and the CUDA host code, so that both draw the same
// rows from the same seed (host/device where a kernel needs them; unit-tested on the CPU).
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/half.h"  // CLIPADAPT_HD
#include "knn/knn.h"

namespace clipadapt::kmeans {

// Weights are summed in blocks of this many rows in row order, then the block sums in order,
// so the total is the same whatever the thread count or device.
constexpr int64_t kSumBlockRows = 4096;

// A uniform double in [0, 1) from 64 random bits (std::uniform_real_distribution is not
// specified bit for bit across standard libraries).
CLIPADAPT_HD double unit_uniform(uint64_t bits) { return double(bits >> 11) * 0x1.0p-53; }

// The first center: row floor(u n), clamped to the last row.
inline int64_t uniform_row(double u, int64_t n) { return std::min<int64_t>(n - 1, static_cast<int64_t>(u * double(n))); }

// The D^2 weight of a row: its squared distance to a center from their dot product and squared
// norms (2 - 2 cos for the cosine and inner-product metrics), clamped at 0. Every operation is
// a correctly rounded double operation (a contracted 2 * dot is exact), so host and device agree.
CLIPADAPT_HD double seeding_distance(double dot, double row_squared, double center_squared, knn::Metric metric) {
  double distance;
  if (metric == knn::Metric::L2) {
    distance = (row_squared + center_squared) - 2.0 * dot;
  } else {
    const double norms = sqrt(row_squared * center_squared);
    distance = 2.0 - 2.0 * (norms > 0.0 ? dot / norms : 0.0);
  }
  return distance < 0.0 ? 0.0 : distance;
}

// The row drawn with probability proportional to its weight, for the uniform u: walks the
// block sums (kSumBlockRows rows each, in order), then the rows of the chosen block, whose
// weights `block_weights(b)` returns (a pointer to its first row's weight). All-zero weights
// (every row at a center) fall back to uniform_row.
template <typename BlockWeights>
int64_t pick_by_weight(const double* block_sums, int64_t blocks, int64_t n, double u, BlockWeights block_weights) {
  double total = 0.0;
  for (int64_t b = 0; b < blocks; ++b) total += block_sums[b];
  if (!(total > 0.0)) return uniform_row(u, n);
  double target = u * total;
  int64_t b = 0;
  while (b < blocks - 1 && target >= block_sums[b]) target -= block_sums[b++];
  const double* weights = block_weights(b);
  const int64_t first = b * kSumBlockRows, rows = std::min(n, first + kSumBlockRows) - first;
  int64_t i = 0;
  while (i < rows - 1 && target >= weights[i]) target -= weights[i++];
  return first + i;
}

}  // namespace clipadapt::kmeans
