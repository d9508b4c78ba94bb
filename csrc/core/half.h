// Bit-exact float16 / bfloat16 -> float32 conversion, usable on host and device, so that
// the CPU kernels need no compiler-specific half types.
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

}  // namespace clipadapt
