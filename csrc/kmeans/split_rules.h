// Empty-cluster splitting rules shared by the CPU and CUDA centroid updates.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "core/half.h"  // CLIPADAPT_HD

namespace clipadapt::kmeans {

constexpr double kSplitEpsilon = 1.0 / 1024.0;

// Coordinate `dim` of the two halves of a split centroid: the new cluster moves one way on
// even coordinates and the other on odd ones, the split cluster symmetrically opposite.
CLIPADAPT_HD float split_coordinate(float value, int64_t dim, bool new_half) {
  const bool up = (dim % 2 == 0) == new_half;
  return static_cast<float>(value * (up ? 1.0 + kSplitEpsilon : 1.0 - kSplitEpsilon));
}

// The cluster to split: the largest count, the lowest id on ties.
inline int64_t largest_cluster(const int64_t* counts, int64_t clusters) {
  int64_t best = 0;
  for (int64_t c = 1; c < clusters; ++c)
    if (counts[c] > counts[best]) best = c;
  return best;
}

// The splits of one update, in the order they apply: (empty, split) pairs. Each empty cluster,
// in increasing id order, takes half of the currently largest one, while that one holds at
// least 2 rows; `counts` is updated to the counts after splitting.
inline std::vector<std::pair<int64_t, int64_t>> plan_splits(int64_t* counts, int64_t clusters) {
  std::vector<std::pair<int64_t, int64_t>> splits;
  for (int64_t empty = 0; empty < clusters; ++empty) {
    if (counts[empty] != 0) continue;
    const int64_t largest = largest_cluster(counts, clusters);
    if (counts[largest] < 2) break;  // nothing left to split
    splits.emplace_back(empty, largest);
    counts[empty] = counts[largest] / 2;
    counts[largest] -= counts[empty];
  }
  return splits;
}

}  // namespace clipadapt::kmeans
