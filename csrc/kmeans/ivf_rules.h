// The IVF search rules the CPU and CUDA scans share (host/device, unit-tested on the CPU).
#pragma once
#include <cstdint>

#include "core/half.h"  // CLIPADAPT_HD

namespace clipadapt::kmeans {

// Whether probe `position` of a query's probe row is scanned: a list id in [0, lists) that no
// earlier entry of the row names (a list probed twice is scanned once, so no row is offered
// twice). -1 and out-of-range entries are skipped.
CLIPADAPT_HD bool scans_probe(const int64_t* probe_row, int64_t position, int64_t lists) {
  const int64_t list = probe_row[position];
  if (list < 0 || list >= lists) return false;
  for (int64_t earlier = 0; earlier < position; ++earlier) {
    if (probe_row[earlier] == list) return false;
  }
  return true;
}

}  // namespace clipadapt::kmeans
