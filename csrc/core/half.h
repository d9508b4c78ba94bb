// Bit-exact float16 / bfloat16 -> float32 conversion, and float64 -> float16 / bfloat16
// rounding, usable on host and device, so that the CPU kernels need no compiler-specific half
// types and both devices round alike.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define CLIPADAPT_HD __host__ __device__ __forceinline__
#else
#define CLIPADAPT_HD inline
#endif

namespace clipadapt {

CLIPADAPT_HD float bits_to_float(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof(value));
  return value;
}

CLIPADAPT_HD uint32_t float_bits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof(bits));
  return bits;
}

CLIPADAPT_HD float bfloat16_to_float(uint16_t bits) { return bits_to_float(uint32_t(bits) << 16); }

CLIPADAPT_HD float float16_to_float(uint16_t bits) {
  const uint32_t sign = uint32_t(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));  // inf / nan
  if (exponent != 0) return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return bits_to_float(sign);  // signed zero
  // Subnormal half: value = mantissa * 2^-24, exact in float32.
  const float magnitude = float(mantissa) * 5.9604644775390625e-08f;
  return sign ? -magnitude : magnitude;
}

CLIPADAPT_HD uint64_t double_bits(double value) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof(bits));
  return bits;
}

// A binary format with kExponentBits exponent and kFractionBits stored fraction bits (IEEE
// layout: sign, biased exponent, fraction).
template <int kExponentBits, int kFractionBits>
struct BinaryFormat {
  static constexpr int kBias = (1 << (kExponentBits - 1)) - 1;
  static constexpr int kDroppedBits = 52 - kFractionBits;  // float64 fraction bits the format lacks
  static constexpr uint32_t kInfinity = ((1u << kExponentBits) - 1) << kFractionBits;
  static constexpr uint32_t kSignBit = 1u << (kExponentBits + kFractionBits);
  // The float64 bits of the format's smallest normal number, 2^(1 - kBias).
  static constexpr uint64_t kSmallestNormal = uint64_t(1023 + 1 - kBias) << 52;
};

// The rounding of a float64 magnitude (its bits) of at least the format's smallest normal
// number and not NaN: round the float64 fraction at the format's last bit, ties to even; a
// carry moves into the exponent, up to inf. Branch-free, so that loops of it vectorise.
template <int kExponentBits, int kFractionBits>
CLIPADAPT_HD uint32_t round_normal_magnitude(uint64_t magnitude) {
  using Format = BinaryFormat<kExponentBits, kFractionBits>;
  const uint64_t odd = (magnitude >> Format::kDroppedBits) & 1;
  const uint64_t rounded = (magnitude + (uint64_t(1) << (Format::kDroppedBits - 1)) - 1 + odd) >> Format::kDroppedBits;
  const uint64_t rebiased = rounded - (uint64_t(1023 - Format::kBias) << kFractionBits);
  return uint32_t(rebiased < Format::kInfinity ? rebiased : Format::kInfinity);
}

// `value` rounded to the nearest number of the format, ties to even, straight from float64:
// one rounding, never through float32 (which would round twice). Returns the format's bit
// pattern; a value at or past the overflow threshold gives inf, NaN a quiet NaN of the same sign.
template <int kExponentBits, int kFractionBits>
CLIPADAPT_HD uint32_t round_double_to_format(double value) {
  using Format = BinaryFormat<kExponentBits, kFractionBits>;
  constexpr int kBias = Format::kBias;
  const uint64_t bits = double_bits(value);
  const uint32_t sign = uint32_t(bits >> 63) << (kExponentBits + kFractionBits);
  const uint64_t magnitude = bits & 0x7fffffffffffffffull;
  if (magnitude > 0x7ff0000000000000ull) return sign | Format::kInfinity | (1u << (kFractionBits - 1));  // NaN
  if (magnitude >= Format::kSmallestNormal) {
    return sign | round_normal_magnitude<kExponentBits, kFractionBits>(magnitude);  // or an overflow
  }
  const int exponent = int(magnitude >> 52) - 1023;
  // The subnormal range: multiples of the smallest subnormal 2^(1 - kBias - kFractionBits).
  // value = significand 2^(exponent - 52), so the multiple is significand >> shift, rounded.
  const int shift = 52 + (1 - kBias - kFractionBits) - exponent;
  if (shift > 53) return sign;  // below half the smallest subnormal (float64 subnormals too)
  const uint64_t significand = (magnitude & 0xfffffffffffffull) | (uint64_t(1) << 52);
  const uint64_t multiple = significand >> shift;
  const uint64_t remainder = significand & ((uint64_t(1) << shift) - 1), half = uint64_t(1) << (shift - 1);
  const bool up = remainder > half || (remainder == half && (multiple & 1));
  return sign | uint32_t(multiple + (up ? 1 : 0));  // 2^kFractionBits: the smallest normal
}

CLIPADAPT_HD uint16_t float16_from_double(double value) { return uint16_t(round_double_to_format<5, 10>(value)); }
CLIPADAPT_HD uint16_t bfloat16_from_double(double value) { return uint16_t(round_double_to_format<8, 7>(value)); }

}  // namespace clipadapt
