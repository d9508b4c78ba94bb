// Warp-cooperative best-first top-k lists in shared memory, shared by the fused k-NN kernel
// (knn_cuda.cu) and the IVF list scan (kmeans_cuda.cu). Include from .cu files only.
#pragma once
#include <cstdint>

#include "knn/topk_insert.h"
#include "knn/topk_rules.h"

namespace clipadapt::knn {

// Warp-cooperative insertion into a best-first list of length k <= kMaxFusedK. Every lane of
// the (converged) warp passes the same candidate; the list order follows ranks_before
// (topk_rules.h). A candidate that does not beat the last entry is dropped. The per-lane steps
// are the host/device functions of topk_insert.h, which the CPU tests run lane by lane.
__device__ __forceinline__ void warp_insert(float* keys, int64_t* indices, int k, float key, int64_t index,
                                            int lane) {
  if (!ranks_before(key, index, keys[k - 1], indices[k - 1])) return;
  int ahead = lane_ahead_count(keys, indices, k, key, index, lane);
  for (int offset = 16; offset > 0; offset >>= 1) ahead += __shfl_xor_sync(kFullMask, ahead, offset);
  MovedSlots moved;
  lane_read_moves(keys, indices, k, ahead, lane, moved);
  __syncwarp();
  lane_write_moves(keys, indices, k, ahead, lane, moved);
  if (lane == 0) {
    keys[ahead] = key;
    indices[ahead] = index;
  }
  __syncwarp();
}

}  // namespace clipadapt::knn
