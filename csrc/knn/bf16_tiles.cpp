#include "knn/bf16_tiles.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CLIPADAPT_BF16_TILES 1
#else
#define CLIPADAPT_BF16_TILES 0  // other CPUs widen bfloat16 rows to float32 for sgemm
#endif

namespace clipadapt::knn {
namespace {

constexpr int kTileRows = 8;       // queries per micro-tile: 8 x 2 accumulators of 16 floats
constexpr int kBlockColumns = 32;  // database rows per packed block (two vectors of 16 lanes)

int64_t pairs_of(int64_t d) { return (d + 1) / 2; }

#if CLIPADAPT_BF16_TILES
#define CLIPADAPT_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// rows x 32 dot products of `rows` queries with one packed block: lane j of accumulator
// (i, h) gathers the dot of query i with block row 16 h + j, two columns per vdpbf16ps.
template <int rows>
CLIPADAPT_BF16_TARGET void micro_tile(const uint16_t* queries, int64_t query_stride, const uint16_t* block,
                                      int64_t pairs, float* out, int64_t out_stride, int columns) {
  __m512 sums[rows][2];
  for (int i = 0; i < rows; ++i) sums[i][0] = sums[i][1] = _mm512_setzero_ps();
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
  const __mmask16 low_mask = columns >= 16 ? 0xffff : static_cast<__mmask16>((1u << columns) - 1);
  const __mmask16 high_mask = columns <= 16 ? 0 : static_cast<__mmask16>((1u << (columns - 16)) - 1);
  for (int i = 0; i < rows; ++i) {
    _mm512_mask_storeu_ps(out + i * out_stride, low_mask, sums[i][0]);
    _mm512_mask_storeu_ps(out + i * out_stride + 16, high_mask, sums[i][1]);
  }
}

using MicroTile = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, float*, int64_t, int);
constexpr MicroTile kMicroTiles[kTileRows + 1] = {nullptr,        micro_tile<1>, micro_tile<2>, micro_tile<3>,
                                                  micro_tile<4>,  micro_tile<5>, micro_tile<6>, micro_tile<7>,
                                                  micro_tile<8>};

bool cpu_has_bf16_tiles() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}
#else
bool cpu_has_bf16_tiles() { return false; }
#endif

}  // namespace

bool bf16_tiles_available() {
  static const bool available = [] {
    const char* setting = std::getenv("CLIPADAPT_CPU_BF16");
    if (setting != nullptr && std::strcmp(setting, "0") == 0) return false;
    return cpu_has_bf16_tiles();
  }();
  return available;
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
#if CLIPADAPT_BF16_TILES
  const int64_t pairs = pairs_of(d), query_stride = 2 * pairs;
  for (int64_t q0 = 0; q0 < qn; q0 += kTileRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kTileRows, qn - q0));
    for (int64_t x0 = 0; x0 < xn; x0 += kBlockColumns) {
      const int columns = static_cast<int>(std::min<int64_t>(kBlockColumns, xn - x0));
      kMicroTiles[rows](queries + q0 * query_stride, query_stride, packed + (x0 / kBlockColumns) * pairs * 2 * kBlockColumns,
                        pairs, out + q0 * xn + x0, xn, columns);
    }
  }
#else
  (void)queries, (void)qn, (void)packed, (void)xn, (void)d, (void)out;  // never called: no bf16 tiles here
#endif
}

}  // namespace clipadapt::knn
