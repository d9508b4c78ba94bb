// Warp-cooperative best-first top-k lists in shared memory, shared by the fused k-NN kernel
// (knn_cuda.cu) and the IVF list scan (kmeans_cuda.cu). Include from .cu files only.
#pragma once
#include <cstdint>

#include "knn/topk_rules.h"

namespace clipadapt::knn {

// Longest list a warp keeps in shared memory (k above it takes other paths).
constexpr int kMaxFusedK = 128;
constexpr int kSlotsPerLane = kMaxFusedK / 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Warp-cooperative insertion into a best-first list of length k <= kMaxFusedK. Every lane of
// the (converged) warp passes the same candidate; the list order follows ranks_before
// (topk_rules.h). A candidate that does not beat the last entry is dropped.
__device__ __forceinline__ void warp_insert(float* keys, int64_t* indices, int k, float key, int64_t index,
                                            int lane) {
  if (!ranks_before(key, index, keys[k - 1], indices[k - 1])) return;
  int ahead = 0;
  for (int s = lane; s < k; s += 32) ahead += ranks_before(keys[s], indices[s], key, index) ? 1 : 0;
  for (int offset = 16; offset > 0; offset >>= 1) ahead += __shfl_xor_sync(kFullMask, ahead, offset);
  float moved_keys[kSlotsPerLane];
  int64_t moved_indices[kSlotsPerLane];
#pragma unroll
  for (int t = 0; t < kSlotsPerLane; ++t) {
    const int slot = ahead + lane + 32 * t;
    if (slot < k - 1) {
      moved_keys[t] = keys[slot];
      moved_indices[t] = indices[slot];
    }
  }
  __syncwarp();
#pragma unroll
  for (int t = 0; t < kSlotsPerLane; ++t) {
    const int slot = ahead + lane + 32 * t;
    if (slot < k - 1) {
      keys[slot + 1] = moved_keys[t];
      indices[slot + 1] = moved_indices[t];
    }
  }
  if (lane == 0) {
    keys[ahead] = key;
    indices[ahead] = index;
  }
  __syncwarp();
}

}  // namespace clipadapt::knn
