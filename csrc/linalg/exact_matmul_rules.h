// The rules both exact_matmul kernels apply: rounding a float64 dot product once to the output
// dtype, and (CPU) when a fast float64 estimate of it is close enough to round alike.
#pragma once
#include <cstdint>

#include "core/half.h"

namespace clipadapt::linalg {

// Rounding to each output dtype, to its bit pattern (ties to even, straight from float64).
struct Float32Output {
  using Bits = uint32_t;
  CLIPADAPT_HD static Bits round(double value) { return float_bits(float(value)); }  // C++ rounds to nearest even
};
struct Float16Output {
  using Bits = uint16_t;
  CLIPADAPT_HD static Bits round(double value) { return float16_from_double(value); }
};
struct BFloat16Output {
  using Bits = uint16_t;
  CLIPADAPT_HD static Bits round(double value) { return bfloat16_from_double(value); }
};

// Bound on |estimate - canonical dot| per unit of |row| |column| (their float64 norms) for
// a float64 estimate of a dot product of length d summed in any order: each is within
// gamma_d |row| |column| of the real dot product (Higham's gamma_d = d u / (1 - d u),
// u = 2^-53; float16/bfloat16/float32 products are exact in float64, and nothing underflows),
// so twice that; plus 4u for rounding estimate +- bound and 1% for computing the bound.
CLIPADAPT_HD double float64_dot_error(int64_t d) {
  const double u = 0x1p-53, terms = double(d) * u;
  return 1.01 * (2.0 * terms / (1.0 - terms) + 4.0 * u);
}

// Whether every float64 within `error` of `estimate` rounds to the same bits of the output,
// and then those bits in `bits`: the canonical dot, being one of them, rounds to them too.
// False when the interval holds a rounding boundary (a midpoint between neighbouring values,
// the overflow threshold, or zero, whose sign the output keeps).
template <typename Output>
CLIPADAPT_HD bool rounds_alike(double estimate, double error, typename Output::Bits& bits) {
  bits = Output::round(estimate - error);
  return bits == Output::round(estimate + error);
}

}  // namespace clipadapt::linalg
