// Radix selection of a slab row's best `width` keys (the GPU's large-k path), as host/device
// rules with a host model that CPU tests check against a sort.
//
// A key becomes 32 bits whose unsigned order is the key order (NaN, as slab_key's -NaN, below
// every number). The width-th largest is found one 8-bit digit at a time, most significant
// first: count the digits of the entries that share the digits found so far, and walk the
// counts down from 255 until they cover the entries still needed. Every entry above the final
// value is selected, and of those equal to it the first ones in row order, so ties go to the
// smaller index as everywhere else.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/half.h"  // CLIPADAPT_HD
#include "knn/topk_rules.h"

namespace clipadapt::knn {

constexpr int kDigitBits = 8;
constexpr int kDigits = 1 << kDigitBits;
constexpr int kDigitPasses = 32 / kDigitBits;

CLIPADAPT_HD uint32_t ordered_key_bits(float key) {
  uint32_t bits;
  memcpy(&bits, &key, sizeof(bits));
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

CLIPADAPT_HD float key_of_ordered_bits(uint32_t ordered) {
  const uint32_t bits = (ordered & 0x80000000u) ? (ordered & 0x7fffffffu) : ~ordered;
  float key;
  memcpy(&key, &bits, sizeof(key));
  return key;
}

// Digit `pass` (0: the most significant) of ordered key bits.
CLIPADAPT_HD uint32_t key_digit(uint32_t ordered, int pass) {
  return (ordered >> (32 - kDigitBits * (pass + 1))) & (kDigits - 1);
}

// Whether the first `pass` digits of `ordered` are `prefix`.
CLIPADAPT_HD bool shares_prefix(uint32_t ordered, uint32_t prefix, int pass) {
  return pass == 0 || (ordered >> (32 - kDigitBits * pass)) == prefix;
}

// From the digit counts of the entries sharing the prefix, the digit of the `needed`-th
// largest of them; `needed` becomes the number still needed among that digit's entries.
CLIPADAPT_HD uint32_t choose_digit(const uint32_t* counts, uint32_t& needed) {
  uint32_t above = 0;
  for (int digit = kDigits - 1; digit > 0; --digit) {
    if (above + counts[digit] >= needed) {
      needed -= above;
      return static_cast<uint32_t>(digit);
    }
    above += counts[digit];
  }
  needed -= above;
  return 0;
}

// Whether entry a (ordered bits, index) ranks before entry b: larger key, then smaller index.
CLIPADAPT_HD bool ordered_before(uint32_t a, int64_t index_a, uint32_t b, int64_t index_b) {
  return a > b || (a == b && index_a < index_b);
}

// Host model of the selection kernel: the best `width` of keys[0, n) (slab keys, width <= n),
// best first, NaN as empty slots (-inf, kEmptyIndex).
inline void host_select_top(const float* keys, int64_t n, int width, float* out_keys, int64_t* out_rows) {
  uint32_t prefix = 0, needed = static_cast<uint32_t>(width);
  for (int pass = 0; pass < kDigitPasses; ++pass) {
    uint32_t counts[kDigits] = {};
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t bits = ordered_key_bits(keys[i]);
      if (shares_prefix(bits, prefix, pass)) ++counts[key_digit(bits, pass)];
    }
    prefix = (prefix << kDigitBits) | choose_digit(counts, needed);
  }
  std::vector<uint32_t> bits;
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = ordered_key_bits(keys[i]);
    if (b > prefix || (b == prefix && needed > 0)) {
      if (b == prefix) --needed;
      bits.push_back(b);
      rows.push_back(i);
    }
  }
  for (size_t i = 0; i < bits.size(); ++i) {
    int rank = 0;
    for (size_t j = 0; j < bits.size(); ++j) rank += ordered_before(bits[j], rows[j], bits[i], rows[i]) ? 1 : 0;
    const float key = key_of_ordered_bits(bits[i]);
    const bool empty = key != key;
    out_keys[rank] = empty ? -INFINITY : key;
    out_rows[rank] = empty ? kEmptyIndex : rows[i];
  }
}

}  // namespace clipadapt::knn
