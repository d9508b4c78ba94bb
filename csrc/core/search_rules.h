// Small search rules shared by CPU and CUDA code (host/device, unit-tested on the CPU).
#pragma once
#include <cstdint>

#include "core/half.h"  // CLIPADAPT_HD

namespace clipadapt {

// The first position in sorted[0, count) whose value is >= target (count when none is): the
// CSR row pointers of sorted edge keys and the cluster offsets of sorted assignments.
CLIPADAPT_HD int64_t first_not_below(const int64_t* sorted, int64_t count, int64_t target) {
  int64_t low = 0, high = count;
  while (low < high) {
    const int64_t middle = low + (high - low) / 2;
    if (sorted[middle] < target) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low;
}

}  // namespace clipadapt
