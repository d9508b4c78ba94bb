#include "knn/avx512_tiles.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

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

int64_t pairs_of(int64_t d) { return (d + 1) / 2; }

#if CLIPADAPT_AVX512_TILES
#define CLIPADAPT_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define CLIPADAPT_FP32_TARGET __attribute__((target("avx512f")))

// A micro-tile's rows x 32 sums (two registers of 16 per query) into out, the first `columns`
// of each row.
template <int rows>
CLIPADAPT_FP32_TARGET inline __attribute__((always_inline)) void store_sums(const __m512 (&sums)[rows][2], float* out,
                                                                            int64_t out_stride, int columns) {
  const __mmask16 low_mask = columns >= 16 ? 0xffff : static_cast<__mmask16>((1u << columns) - 1);
  const __mmask16 high_mask = columns <= 16 ? 0 : static_cast<__mmask16>((1u << (columns - 16)) - 1);
  for (int i = 0; i < rows; ++i) {
    _mm512_mask_storeu_ps(out + i * out_stride, low_mask, sums[i][0]);
    _mm512_mask_storeu_ps(out + i * out_stride + 16, high_mask, sums[i][1]);
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
  store_sums<rows>(sums, out, out_stride, columns);
}

using MicroTile = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, float*, int64_t, int);
constexpr MicroTile kMicroTiles[kTileRows + 1] = {nullptr,        micro_tile<1>, micro_tile<2>, micro_tile<3>,
                                                  micro_tile<4>,  micro_tile<5>, micro_tile<6>, micro_tile<7>,
                                                  micro_tile<8>};

// The float32 twin of micro_tile: one column of the block per step, a fused multiply-add per
// accumulator (the product is exact before its one rounding, as sgemm's may be).
template <int rows>
CLIPADAPT_FP32_TARGET void float32_micro_tile(const float* queries, int64_t query_stride, const float* block,
                                              int64_t d, float* out, int64_t out_stride, int columns) {
  __m512 sums[rows][2] = {};
  for (int64_t c = 0; c < d; ++c) {
    const __m512 low = _mm512_loadu_ps(block + c * kBlockColumns);
    const __m512 high = _mm512_loadu_ps(block + c * kBlockColumns + 16);
    for (int i = 0; i < rows; ++i) {
      const __m512 query = _mm512_set1_ps(queries[i * query_stride + c]);
      sums[i][0] = _mm512_fmadd_ps(low, query, sums[i][0]);
      sums[i][1] = _mm512_fmadd_ps(high, query, sums[i][1]);
    }
  }
  store_sums<rows>(sums, out, out_stride, columns);
}

using Float32MicroTile = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int);
constexpr Float32MicroTile kFloat32MicroTiles[kTileRows + 1] = {
    nullptr,  float32_micro_tile<1>, float32_micro_tile<2>, float32_micro_tile<3>, float32_micro_tile<4>,
    float32_micro_tile<5>, float32_micro_tile<6>, float32_micro_tile<7>, float32_micro_tile<8>};

bool cpu_has_float32_tiles() {
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
bool cpu_has_float32_tiles() { return false; }
#endif

// The tiles of a kind are used when the CPU has them and `variable` (read once) is not "0".
bool enabled_unless(const char* variable, bool cpu_has_them) {
  const char* setting = std::getenv(variable);
  return !(setting != nullptr && std::strcmp(setting, "0") == 0) && cpu_has_them;
}

// Calls tile(q0, rows, x0, columns) for every (up to 8 queries x up to 32 rows) micro-tile.
template <typename Tile>
void for_each_micro_tile(int64_t qn, int64_t xn, Tile&& tile) {
  for (int64_t q0 = 0; q0 < qn; q0 += kTileRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kTileRows, qn - q0));
    for (int64_t x0 = 0; x0 < xn; x0 += kBlockColumns) {
      tile(q0, rows, x0, static_cast<int>(std::min<int64_t>(kBlockColumns, xn - x0)));
    }
  }
}

}  // namespace

bool bf16_tiles_available() {
  static const bool available = enabled_unless("CLIPADAPT_CPU_BF16", cpu_has_bf16_tiles());
  return available;
}

bool float32_tiles_available() {
  static const bool available = enabled_unless("CLIPADAPT_CPU_FP32_TILES", cpu_has_float32_tiles());
  return available;
}

void pack_float32_rows(const float* rows, int64_t count, int64_t d, std::vector<float>& packed) {
  const int64_t blocks = (count + kBlockColumns - 1) / kBlockColumns;
  packed.assign(blocks * d * kBlockColumns, 0.0f);
  for (int64_t r = 0; r < count; ++r) {
    float* target = packed.data() + (r / kBlockColumns) * d * kBlockColumns + r % kBlockColumns;
    const float* row = rows + r * d;
    for (int64_t c = 0; c < d; ++c) target[c * kBlockColumns] = row[c];
  }
}

void float32_dot_tile(const float* queries, int64_t qn, const float* packed, int64_t xn, int64_t d, float* out) {
#if CLIPADAPT_AVX512_TILES
  for_each_micro_tile(qn, xn, [&](int64_t q0, int rows, int64_t x0, int columns) {
    kFloat32MicroTiles[rows](queries + q0 * d, d, packed + (x0 / kBlockColumns) * d * kBlockColumns, d,
                             out + q0 * xn + x0, xn, columns);
  });
#else
  (void)queries, (void)qn, (void)packed, (void)xn, (void)d, (void)out;  // never called: no AVX-512 here
#endif
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
