#include "knn/avx512_tiles.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CLIPADAPT_AVX512_TILES 1
#else
#define CLIPADAPT_AVX512_TILES 0  // other CPUs run sgemm (16-bit rows widened to float32)
#endif

namespace clipadapt::knn {
namespace {

constexpr int kTileRows = 8;       // queries per micro-tile: 8 x 2 accumulators of 16 floats
constexpr int kBlockColumns = 32;  // database rows per packed block (two vectors of 16 lanes)

// Database rows per packed block of the float32 / float64 tiles: two 512-bit vectors of T.
template <typename T>
constexpr int kFmaBlockColumns = 2 * 64 / int(sizeof(T));

int64_t pairs_of(int64_t d) { return (d + 1) / 2; }

#if CLIPADAPT_AVX512_TILES
#define CLIPADAPT_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define CLIPADAPT_AVX512F_TARGET __attribute__((target("avx512f")))

// The 512-bit vector of each element type the FMA tiles run on (16 floats or 8 doubles).
template <typename T>
struct Vector512 {
  static constexpr bool kSingle = std::is_same_v<T, float>;
  using Register = std::conditional_t<kSingle, __m512, __m512d>;
  using Mask = std::conditional_t<kSingle, __mmask16, __mmask8>;
  static constexpr int kLanes = 64 / int(sizeof(T));
  CLIPADAPT_AVX512F_TARGET static Register load(const T* values) {
    if constexpr (kSingle) return _mm512_loadu_ps(values); else return _mm512_loadu_pd(values);
  }
  CLIPADAPT_AVX512F_TARGET static Register broadcast(T value) {
    if constexpr (kSingle) return _mm512_set1_ps(value); else return _mm512_set1_pd(value);
  }
  CLIPADAPT_AVX512F_TARGET static Register fmadd(Register a, Register b, Register c) {
    if constexpr (kSingle) return _mm512_fmadd_ps(a, b, c); else return _mm512_fmadd_pd(a, b, c);
  }
  CLIPADAPT_AVX512F_TARGET static void store(T* out, Mask mask, Register v) {
    if constexpr (kSingle) _mm512_mask_storeu_ps(out, mask, v); else _mm512_mask_storeu_pd(out, mask, v);
  }
};

// The mask of the first `count` lanes (0 to kLanes, clamped).
template <typename Vector>
CLIPADAPT_AVX512F_TARGET inline typename Vector::Mask first_lanes(int count) {
  if (count <= 0) return 0;
  if (count >= Vector::kLanes) return static_cast<typename Vector::Mask>((1u << Vector::kLanes) - 1);
  return static_cast<typename Vector::Mask>((1u << count) - 1);
}

// A micro-tile's rows x (2 lanes) sums (two registers per query) into out, the first `columns`
// of each row.
template <typename T, int rows>
CLIPADAPT_AVX512F_TARGET inline __attribute__((always_inline)) void store_sums(
    const typename Vector512<T>::Register (&sums)[rows][2], T* out, int64_t out_stride, int columns) {
  using Vector = Vector512<T>;
  const auto low_mask = first_lanes<Vector>(columns), high_mask = first_lanes<Vector>(columns - Vector::kLanes);
  for (int i = 0; i < rows; ++i) {
    Vector::store(out + i * out_stride, low_mask, sums[i][0]);
    Vector::store(out + i * out_stride + Vector::kLanes, high_mask, sums[i][1]);
  }
}

// rows x 32 dot products of `rows` queries with one packed block: lane j of accumulator
// (i, h) gathers the dot of query i with block row 16 h + j, two columns per vdpbf16ps.
template <int rows>
CLIPADAPT_BF16_TARGET void micro_tile(const uint16_t* queries, int64_t query_stride, const uint16_t* block,
                                      int64_t pairs, float* out, int64_t out_stride, int columns) {
  __m512 sums[rows][2] = {};
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh low = (__m512bh)_mm512_loadu_si512(block + p * 2 * kBlockColumns);
    const __m512bh high = (__m512bh)_mm512_loadu_si512(block + p * 2 * kBlockColumns + kBlockColumns);
    for (int i = 0; i < rows; ++i) {
      int32_t pair;
      std::memcpy(&pair, queries + i * query_stride + 2 * p, sizeof(pair));
      const __m512bh query = (__m512bh)_mm512_set1_epi32(pair);
      sums[i][0] = _mm512_dpbf16_ps(sums[i][0], low, query);
      sums[i][1] = _mm512_dpbf16_ps(sums[i][1], high, query);
    }
  }
  store_sums<float, rows>(sums, out, out_stride, columns);
}

using MicroTile = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, float*, int64_t, int);
constexpr MicroTile kMicroTiles[kTileRows + 1] = {nullptr,        micro_tile<1>, micro_tile<2>, micro_tile<3>,
                                                  micro_tile<4>,  micro_tile<5>, micro_tile<6>, micro_tile<7>,
                                                  micro_tile<8>};

// The float32 and float64 twins of micro_tile: one column of the block per step, a fused
// multiply-add per accumulator (the product is exact before its one rounding, as a BLAS's may be).
template <typename T, int rows>
CLIPADAPT_AVX512F_TARGET void fma_micro_tile(const T* queries, int64_t query_stride, const T* block, int64_t d, T* out,
                                          int64_t out_stride, int columns) {
  using Vector = Vector512<T>;
  constexpr int block_columns = kFmaBlockColumns<T>;
  typename Vector::Register sums[rows][2];
  for (int i = 0; i < rows; ++i) sums[i][0] = sums[i][1] = Vector::broadcast(T(0));
  for (int64_t c = 0; c < d; ++c) {
    const auto low = Vector::load(block + c * block_columns);
    const auto high = Vector::load(block + c * block_columns + Vector::kLanes);
    for (int i = 0; i < rows; ++i) {
      const auto query = Vector::broadcast(queries[i * query_stride + c]);
      sums[i][0] = Vector::fmadd(low, query, sums[i][0]);
      sums[i][1] = Vector::fmadd(high, query, sums[i][1]);
    }
  }
  store_sums<T, rows>(sums, out, out_stride, columns);
}

template <typename T>
using FmaMicroTile = void (*)(const T*, int64_t, const T*, int64_t, T*, int64_t, int);
template <typename T>
constexpr FmaMicroTile<T> kFmaMicroTiles[kTileRows + 1] = {
    nullptr,  fma_micro_tile<T, 1>, fma_micro_tile<T, 2>, fma_micro_tile<T, 3>, fma_micro_tile<T, 4>,
    fma_micro_tile<T, 5>, fma_micro_tile<T, 6>, fma_micro_tile<T, 7>, fma_micro_tile<T, 8>};

bool cpu_has_fma_tiles() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

bool cpu_has_bf16_tiles() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}
#else
bool cpu_has_bf16_tiles() { return false; }
bool cpu_has_fma_tiles() { return false; }
#endif

// The tiles of a kind are used when the CPU has them and `variable` (read once) is not "0".
bool enabled_unless(const char* variable, bool cpu_has_them) {
  const char* setting = std::getenv(variable);
  return !(setting != nullptr && std::strcmp(setting, "0") == 0) && cpu_has_them;
}

// Calls tile(q0, rows, x0, columns) for every (up to 8 queries x up to block_columns rows)
// micro-tile.
template <int block_columns = kBlockColumns, typename Tile>
void for_each_micro_tile(int64_t qn, int64_t xn, Tile&& tile) {
  for (int64_t q0 = 0; q0 < qn; q0 += kTileRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kTileRows, qn - q0));
    for (int64_t x0 = 0; x0 < xn; x0 += block_columns) {
      tile(q0, rows, x0, static_cast<int>(std::min<int64_t>(block_columns, xn - x0)));
    }
  }
}

template <typename T>
int64_t fma_packed_size(int64_t count, int64_t d) {
  constexpr int block_columns = kFmaBlockColumns<T>;
  return (count + block_columns - 1) / block_columns * block_columns * d;
}

template <typename T>
void pack_fma_rows(const T* rows, int64_t count, int64_t d, T* packed) {
  constexpr int block_columns = kFmaBlockColumns<T>;
  std::fill_n(packed, fma_packed_size<T>(count, d), T(0));
  for (int64_t r = 0; r < count; ++r) {
    T* target = packed + (r / block_columns) * d * block_columns + r % block_columns;
    const T* row = rows + r * d;
    for (int64_t c = 0; c < d; ++c) target[c * block_columns] = row[c];
  }
}

template <typename T>
void fma_dot_tile(const T* queries, int64_t qn, const T* packed, int64_t xn, int64_t d, T* out) {
#if CLIPADAPT_AVX512_TILES
  constexpr int block_columns = kFmaBlockColumns<T>;
  for_each_micro_tile<block_columns>(qn, xn, [&](int64_t q0, int rows, int64_t x0, int columns) {
    kFmaMicroTiles<T>[rows](queries + q0 * d, d, packed + x0 * d, d, out + q0 * xn + x0, xn, columns);
  });
#else
  (void)queries, (void)qn, (void)packed, (void)xn, (void)d, (void)out;  // never called: no AVX-512 here
#endif
}

}  // namespace

bool bf16_tiles_available() {
  static const bool available = enabled_unless("CLIPADAPT_CPU_BF16", cpu_has_bf16_tiles());
  return available;
}

bool float32_tiles_available() {
  static const bool available = enabled_unless("CLIPADAPT_CPU_FP32_TILES", cpu_has_fma_tiles());
  return available;
}

bool float64_tiles_available() {
  static const bool available = enabled_unless("CLIPADAPT_CPU_FP64_TILES", cpu_has_fma_tiles());
  return available;
}

void pack_float32_rows(const float* rows, int64_t count, int64_t d, std::vector<float>& packed) {
  packed.resize(fma_packed_size<float>(count, d));
  pack_fma_rows(rows, count, d, packed.data());
}

void float32_dot_tile(const float* queries, int64_t qn, const float* packed, int64_t xn, int64_t d, float* out) {
  fma_dot_tile(queries, qn, packed, xn, d, out);
}

int64_t float64_packed_size(int64_t count, int64_t d) { return fma_packed_size<double>(count, d); }

void pack_float64_rows(const double* rows, int64_t count, int64_t d, double* packed) {
  pack_fma_rows(rows, count, d, packed);
}

void float64_dot_tile(const double* queries, int64_t qn, const double* packed, int64_t xn, int64_t d, double* out) {
  fma_dot_tile(queries, qn, packed, xn, d, out);
}

void pack_bf16_rows(const uint16_t* rows, int64_t count, int64_t d, std::vector<uint16_t>& packed) {
  const int64_t pairs = pairs_of(d), blocks = (count + kBlockColumns - 1) / kBlockColumns;
  packed.assign(blocks * pairs * 2 * kBlockColumns, 0);
  for (int64_t r = 0; r < count; ++r) {
    uint16_t* target = packed.data() + (r / kBlockColumns) * pairs * 2 * kBlockColumns + (r % kBlockColumns) * 2;
    const uint16_t* row = rows + r * d;
    int64_t p = 0;
    for (; 2 * p + 1 < d; ++p) std::memcpy(target + p * 2 * kBlockColumns, row + 2 * p, 2 * sizeof(uint16_t));
    if (d % 2 == 1) target[p * 2 * kBlockColumns] = row[d - 1];
  }
}

const uint16_t* even_bf16_rows(const uint16_t* rows, int64_t count, int64_t d, std::vector<uint16_t>& padded) {
  if (d % 2 == 0) return rows;
  padded.assign(count * (d + 1), 0);
  for (int64_t r = 0; r < count; ++r) std::copy_n(rows + r * d, d, padded.data() + r * (d + 1));
  return padded.data();
}

void bf16_dot_tile(const uint16_t* queries, int64_t qn, const uint16_t* packed, int64_t xn, int64_t d, float* out) {
#if CLIPADAPT_AVX512_TILES
  const int64_t pairs = pairs_of(d), query_stride = 2 * pairs;
  for_each_micro_tile(qn, xn, [&](int64_t q0, int rows, int64_t x0, int columns) {
    const uint16_t* block = packed + (x0 / kBlockColumns) * pairs * 2 * kBlockColumns;
    kMicroTiles[rows](queries + q0 * query_stride, query_stride, block, pairs, out + q0 * xn + x0, xn, columns);
  });
#else
  (void)queries, (void)qn, (void)packed, (void)xn, (void)d, (void)out;  // never called: no bf16 tiles here
#endif
}

}  // namespace clipadapt::knn
