// Run-time dispatch of hot loops to AVX-512 / AVX2 while the wheel targets x86-64-v2: put
// CLIPADAPT_VECTOR_CLONES before a non-template function definition.
#pragma once
#include <cstdint>
#include <cstring>

namespace clipadapt {

#if defined(__x86_64__) && defined(__GNUC__)
#define CLIPADAPT_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLIPADAPT_VECTOR_CLONES
#endif

// A helper of a CLIPADAPT_VECTOR_CLONES function: inlined into each clone, so compiled for
// the clone's instruction set.
#if defined(__GNUC__)
#define CLIPADAPT_CLONE_INLINE inline __attribute__((always_inline))
#else
#define CLIPADAPT_CLONE_INLINE inline
#endif

// 64 bytes of lanes: one AVX-512 register (two AVX2 or four SSE registers in those clones).
// Pass them by reference: by value, a 64-byte vector has another ABI in the non-AVX-512 clones.
template <typename T>
struct LanesOf;
template <>
struct LanesOf<float> {
  using type = float __attribute__((vector_size(64)));
};
template <>
struct LanesOf<double> {
  using type = double __attribute__((vector_size(64)));
};
template <typename T>
using Lanes = typename LanesOf<T>::type;

template <typename T>
constexpr int64_t kLanesOf = int64_t(sizeof(Lanes<T>) / sizeof(T));

template <typename T>
CLIPADAPT_CLONE_INLINE void load_lanes(Lanes<T>& lanes, const T* from) {
  std::memcpy(&lanes, from, sizeof(lanes));
}

template <typename T>
CLIPADAPT_CLONE_INLINE void store_lanes(T* to, const Lanes<T>& lanes) {
  std::memcpy(to, &lanes, sizeof(lanes));
}

// Asks for every cache line of [start, start + bytes): the software prefetch of rows a loop
// will gather or stream soon.
CLIPADAPT_CLONE_INLINE void prefetch_bytes(const void* start, int64_t bytes) {
  const char* first = static_cast<const char*>(start);
  for (int64_t byte = 0; byte < bytes; byte += 64) __builtin_prefetch(first + byte);
}

}  // namespace clipadapt
