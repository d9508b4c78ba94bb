// Empty-cluster splitting rules shared by the CPU and CUDA centroid updates.
#pragma once
#include <cstdint>

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

}  // namespace clipadapt::kmeans
