#include <cmath>

#include "core/parallel.h"
#include "core/finite.h"
#include "core/half.h"

namespace clipadapt {
namespace {

// A value is non-finite exactly when its exponent bits are all ones, for every float format.
template <typename Bits>
bool any_exponent_all_ones(const Bits* values, int64_t count, Bits exponent_mask) {
  bool found = false;
#pragma omp parallel for reduction(|| : found) schedule(static) num_threads(thread_count())
  for (int64_t i = 0; i < count; ++i) {
    found = found || ((values[i] & exponent_mask) == exponent_mask);
  }
  return found;
}

}  // namespace

bool has_nonfinite_cpu(const Matrix& values) {
  switch (values.dtype) {
    case DType::Float32:
      return any_exponent_all_ones(values.as<const uint32_t>(), values.size(), 0x7f800000u);
    case DType::Float16:
      return any_exponent_all_ones(values.as<const uint16_t>(), values.size(), uint16_t(0x7c00u));
    case DType::BFloat16:
      return any_exponent_all_ones(values.as<const uint16_t>(), values.size(), uint16_t(0x7f80u));
    case DType::Float64:
      return any_exponent_all_ones(values.as<const uint64_t>(), values.size(), uint64_t(0x7ff0000000000000ull));
    case DType::Int64:
      return false;
  }
  return false;
}

}  // namespace clipadapt
