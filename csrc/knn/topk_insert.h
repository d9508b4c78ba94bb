// The steps of the GPU's warp-cooperative list insertion (topk_cuda.cuh warp_insert), one
// lane at a time, as host/device functions: the kernel runs them on 32 lanes at once, and
// host_warp_insert runs them lane by lane so that CPU tests check the GPU's algorithm.
#pragma once
#include <cstdint>

#include "core/half.h"  // CLIPADAPT_HD
#include "knn/topk_rules.h"

namespace clipadapt::knn {

// Longest list a warp keeps in shared memory (k above it takes other paths).
constexpr int kMaxFusedK = 128;
constexpr int kWarpLanes = 32;
constexpr int kSlotsPerLane = kMaxFusedK / kWarpLanes;
constexpr unsigned kFullMask = 0xffffffffu;

// This lane's count of list entries that rank before the candidate (slots lane, lane + 32, ...);
// the warp's sum is the candidate's position.
CLIPADAPT_HD int lane_ahead_count(const float* keys, const int64_t* indices, int k, float key, int64_t index,
                                  int lane) {
  int ahead = 0;
  for (int s = lane; s < k; s += kWarpLanes) ahead += ranks_before(keys[s], indices[s], key, index) ? 1 : 0;
  return ahead;
}

// The entries a lane moves one slot down to make room at `ahead`: slots ahead + lane + 32 t
// below k - 1 (the last entry falls off).
struct MovedSlots {
  float keys[kSlotsPerLane];
  int64_t indices[kSlotsPerLane];
};

CLIPADAPT_HD void lane_read_moves(const float* keys, const int64_t* indices, int k, int ahead, int lane,
                                  MovedSlots& moved) {
  for (int t = 0; t < kSlotsPerLane; ++t) {
    const int slot = ahead + lane + kWarpLanes * t;
    if (slot < k - 1) {
      moved.keys[t] = keys[slot];
      moved.indices[t] = indices[slot];
    }
  }
}

CLIPADAPT_HD void lane_write_moves(float* keys, int64_t* indices, int k, int ahead, int lane, const MovedSlots& moved) {
  for (int t = 0; t < kSlotsPerLane; ++t) {
    const int slot = ahead + lane + kWarpLanes * t;
    if (slot < k - 1) {
      keys[slot + 1] = moved.keys[t];
      indices[slot + 1] = moved.indices[t];
    }
  }
}

// warp_insert with the warp's lanes run one after another: every lane reads before any writes
// (the kernel's __syncwarp between the two steps).
inline void host_warp_insert(float* keys, int64_t* indices, int k, float key, int64_t index) {
  if (!ranks_before(key, index, keys[k - 1], indices[k - 1])) return;
  int ahead = 0;
  for (int lane = 0; lane < kWarpLanes; ++lane) ahead += lane_ahead_count(keys, indices, k, key, index, lane);
  MovedSlots moved[kWarpLanes];
  for (int lane = 0; lane < kWarpLanes; ++lane) lane_read_moves(keys, indices, k, ahead, lane, moved[lane]);
  for (int lane = 0; lane < kWarpLanes; ++lane) lane_write_moves(keys, indices, k, ahead, lane, moved[lane]);
  keys[ahead] = key;
  indices[ahead] = index;
}

}  // namespace clipadapt::knn
