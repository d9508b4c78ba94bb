// CPU exact_matmul: a fast float64 pass on the inputs widened to float64 (exact) -- our AVX-512
// float64 tiles where the CPU has them (OpenBLAS's dgemm runs 256-bit kernels on AMD CPUs and
// under OPENBLAS_CORETYPE=Haswell), else OpenBLAS's dgemm -- then each entry rounded from it when
// float64_dot_error proves the canonical dot rounds alike, else from the canonical dot itself
// (knn/rescore.h's canonical_row_dot). OpenMP runs over tiles of rows of a, for one block of
// columns of b at a time; each block of b is widened once (and packed for the tiles).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "core/host_memory.h"
#include "core/parallel.h"
#include "core/simd.h"
#include "knn/avx512_tiles.h"
#include "knn/cpu_tiles.h"
#include "knn/exact_score.h"
#include "knn/rescore.h"
#include "linalg/exact_matmul.h"
#include "linalg/exact_matmul_rules.h"

namespace clipadapt::linalg {
namespace {

constexpr int64_t kRowTile = 128;        // rows of a per work item: a float64 tile of 128 x D
constexpr int64_t kColumnBlock = 2048;   // columns of b widened at a time: 8 D kColumnBlock bytes
// Columns estimated, then rounded, at a time: with the row tile, 2 x 128 x D float64 (1.5 MiB
// at D = 768) that stay in a core's L2 while the tiles read them; a multiple of the tiles' 16.
constexpr int64_t kColumnTile = 128;

// The columns of b as the rows of a [N, D] matrix in b's dtype, held in `storage`.
Matrix transposed(const Matrix& b, HostBuffer<unsigned char>& storage) {
  const int64_t d = b.rows, n = b.cols, size = dtype_size(b.dtype);
  storage = allocate_workspace<unsigned char>(static_cast<size_t>(n * d * size));
  unsigned char* target = storage.get();
  const auto* source = static_cast<const unsigned char*>(b.data);
#pragma omp parallel for schedule(static) num_threads(thread_count())
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < d; ++k) std::memcpy(target + (j * d + k) * size, source + (k * n + j) * size, size);
  }
  Matrix columns = b;
  columns.data = storage.get();
  columns.rows = n;
  columns.cols = d;
  return columns;
}

template <typename Elements>
void widen(Elements values, int64_t count, double* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = values[i];
}

// Rows [first, first + count) of m, exactly as float64.
void widen_rows(const Matrix& m, int64_t first, int64_t count, double* out) {
  const int64_t offset = first * m.cols, elements = count * m.cols;
  switch (m.dtype) {
    case DType::Float16: return widen(knn::Float16Elements{m.as<const uint16_t>() + offset}, elements, out);
    case DType::BFloat16: return widen(knn::BFloat16Elements{m.as<const uint16_t>() + offset}, elements, out);
    default: return widen(knn::Float32Elements{m.as<const float>() + offset}, elements, out);
  }
}

// The norms of `count` widened rows of length d: sums of squares in eight lanes, each within
// a relative (d + 1) u of the real norm, far inside the 1% float64_dot_error allows for the
// bound's own rounding (the squares of float16/bfloat16/float32 values neither overflow nor
// underflow in float64).
void widened_norms(const double* rows, int64_t count, int64_t d, double* norms) {
  constexpr int kLanes = 8;
  for (int64_t r = 0; r < count; ++r) {
    const double* row = rows + r * d;
    double lanes[kLanes] = {};
    int64_t k = 0;
    for (; k + kLanes <= d; k += kLanes) {
      for (int l = 0; l < kLanes; ++l) lanes[l] += row[k + l] * row[k + l];
    }
    double sum = 0.0;
    for (; k < d; ++k) sum += row[k] * row[k];
    for (double lane : lanes) sum += lane;
    norms[r] = std::sqrt(sum);
  }
}

// What every work item reads: the operands (b as rows), the widened block of columns
// [first_column, first_column + columns) and their norms, the error bound per unit of norms. The
// block holds the columns as rows for dgemm, or packed for the float64 tiles; either way column
// c of the block (a multiple of 16) starts at block + c D. Buffers here and in Workspace are
// on 2 MiB pages where the kernel grants them (a few page faults per call, not thousands).
struct Operands {
  const Matrix& a;
  const Matrix& b_rows;
  double error_per_norms;
  bool tiles = knn::float64_tiles_available();
  HostBuffer<double> block = allocate_workspace<double>(
      knn::float64_packed_size(std::min(kColumnBlock, b_rows.rows), a.cols));
  std::vector<double> block_norms = std::vector<double>(std::min(kColumnBlock, b_rows.rows));
  int64_t first_column = 0, columns = 0;
};

// Widens (and packs for the tiles) the block of columns o.first_column + [0, o.columns).
void load_block(Operands& o) {
  const int64_t d = o.a.cols;
  if (!o.tiles) {
    widen_rows(o.b_rows, o.first_column, o.columns, o.block.get());
    widened_norms(o.block.get(), o.columns, d, o.block_norms.data());
    return;
  }
  constexpr int64_t kPackRows = 16;  // the tiles' block: packed one at a time from a small buffer
  std::vector<double> rows(kPackRows * d);
  for (int64_t first = 0; first < o.columns; first += kPackRows) {
    const int64_t count = std::min(kPackRows, o.columns - first);
    widen_rows(o.b_rows, o.first_column + first, count, rows.data());
    widened_norms(rows.data(), count, d, o.block_norms.data() + first);
    knn::pack_float64_rows(rows.data(), count, d, o.block.get() + first * d);
  }
}

// Per-thread scratch: a tile of rows of a, their norms and their products with kColumnTile
// columns, in float64.
struct Workspace {
  explicit Workspace(int64_t d)
      : storage(allocate_workspace<double>(kRowTile * (d + kColumnTile + 1))),
        rows(storage.get()),
        products(rows + kRowTile * d),
        norms(products + kRowTile * kColumnTile) {}
  HostBuffer<double> storage;
  double* rows;
  double* products;
  double* norms;
};

// products [rows, columns] = the widened rows of a times the block's columns
// [first, first + columns), in float64.
void estimate(const Operands& o, const double* rows_of_a, int64_t rows, int64_t first, int64_t columns,
              double* products) {
  const int64_t d = o.a.cols;
  const double* block = o.block.get() + first * d;
  if (o.tiles) {
    knn::float64_dot_tile(rows_of_a, rows, block, columns, d, products);
    return;
  }
  const auto m = static_cast<blasint>(rows), n = static_cast<blasint>(columns), k = static_cast<blasint>(d);
  // k = 0 is valid: beta = 0 makes every product 0.
  scipy_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0, rows_of_a, std::max<blasint>(k, 1), block,
                    std::max<blasint>(k, 1), 0.0, products, std::max<blasint>(n, 1));
}

// An end of an estimate's interval rounded where that needs no branch: the hardware's float32
// conversion (exact rounding of any value), or a half format's normal numbers and overflow
// (round_normal_magnitude); `plain` says whether it applied (not for zero, subnormals or NaN,
// which rounds_alike handles).
CLIPADAPT_CLONE_INLINE uint32_t plain_round(Float32Output, double value, bool& plain) {
  plain = true;
  return float_bits(float(value));
}

template <int kExponentBits, int kFractionBits>
CLIPADAPT_CLONE_INLINE uint32_t plain_round_to_format(double value, bool& plain) {
  using Format = BinaryFormat<kExponentBits, kFractionBits>;
  const uint64_t bits = double_bits(value), magnitude = bits & 0x7fffffffffffffffull;
  plain = magnitude >= Format::kSmallestNormal && magnitude < 0x7ff0000000000000ull;
  return ((bits >> 63) ? Format::kSignBit : 0u) | round_normal_magnitude<kExponentBits, kFractionBits>(magnitude);
}

CLIPADAPT_CLONE_INLINE uint32_t plain_round(Float16Output, double value, bool& plain) {
  return plain_round_to_format<5, 10>(value, plain);
}

CLIPADAPT_CLONE_INLINE uint32_t plain_round(BFloat16Output, double value, bool& plain) {
  return plain_round_to_format<8, 7>(value, plain);
}

// One row of a tile's estimates: out[c] rounded from the estimate, and undecided[c] = 1 where
// plain_round could not show that both ends of its interval round alike. Branch-free, so the
// vector clones run it a register of entries at a time (rounding both ends one entry at a time
// took a fifth of the call).
template <typename Output>
CLIPADAPT_CLONE_INLINE void decide_row_body(const double* products, double row_error, const double* norms,
                                            int64_t columns, typename Output::Bits* out, uint8_t* undecided) {
  for (int64_t c = 0; c < columns; ++c) {
    const double error = row_error * norms[c];
    bool low_plain, high_plain;
    const uint32_t low = plain_round(Output{}, products[c] - error, low_plain);
    const uint32_t high = plain_round(Output{}, products[c] + error, high_plain);
    out[c] = static_cast<typename Output::Bits>(low);
    undecided[c] = !(low_plain & high_plain & (low == high));
  }
}

// One clone set per output type: target_clones applies to plain functions only.
#define CLIPADAPT_DECIDE_ROW(Output)                                                                          \
  CLIPADAPT_VECTOR_CLONES                                                                                     \
  void decide_row(Output, const double* products, double row_error, const double* norms, int64_t columns,     \
                  Output::Bits* out, uint8_t* undecided) {                                                    \
    decide_row_body<Output>(products, row_error, norms, columns, out, undecided);                             \
  }
CLIPADAPT_DECIDE_ROW(Float32Output)
CLIPADAPT_DECIDE_ROW(Float16Output)
CLIPADAPT_DECIDE_ROW(BFloat16Output)
#undef CLIPADAPT_DECIDE_ROW

// Rounds the products of the tile's rows [first_row, + rows) with the block's columns
// [first, + columns) into out: decide_row for the row, then rounds_alike for the entries it
// left undecided, and the canonical dot where the product could round otherwise; returns how
// many were re-computed so.
template <typename Output>
int64_t round_tile(const Operands& o, int64_t first_row, int64_t rows, int64_t first, int64_t columns,
                   const Workspace& ws, const Matrix& out) {
  int64_t recomputed = 0;
  uint8_t undecided[kColumnTile];
  const double* norms = o.block_norms.data() + first;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = first_row + r;
    const double row_error = o.error_per_norms * ws.norms[r];
    const double* products = ws.products + r * columns;
    auto* out_row = out.as<typename Output::Bits>() + i * out.cols + o.first_column + first;
    decide_row(Output{}, products, row_error, norms, columns, out_row, undecided);
    for (int64_t c = 0; c < columns; ++c) {
      if (undecided[c] && !rounds_alike<Output>(products[c], row_error * norms[c], out_row[c])) {
        out_row[c] = Output::round(knn::canonical_row_dot(o.a, i, o.b_rows, o.first_column + first + c));
        ++recomputed;
      }
    }
  }
  return recomputed;
}

template <typename Output>
int64_t row_tile(const Operands& o, int64_t first_row, const Matrix& out, Workspace& ws) {
  const int64_t rows = std::min(kRowTile, o.a.rows - first_row);
  widen_rows(o.a, first_row, rows, ws.rows);
  widened_norms(ws.rows, rows, o.a.cols, ws.norms);
  int64_t recomputed = 0;
  for (int64_t first = 0; first < o.columns; first += kColumnTile) {
    const int64_t columns = std::min(kColumnTile, o.columns - first);
    estimate(o, ws.rows, rows, first, columns, ws.products);
    recomputed += round_tile<Output>(o, first_row, rows, first, columns, ws, out);
  }
  return recomputed;
}

template <typename Output>
int64_t run(const ExactMatmulProblem& p) {
  HostBuffer<unsigned char> b_storage;
  const Matrix b_rows = transposed(p.b, b_storage);
  Operands o{p.a, b_rows, float64_dot_error(p.a.cols)};
  const int64_t row_tiles = (p.a.rows + kRowTile - 1) / kRowTile;
  std::vector<Workspace> workspaces;  // one per thread, made here where bad_alloc may leave
  for (int thread = 0; thread < thread_count(); ++thread) workspaces.emplace_back(p.a.cols);
  int64_t recomputed = 0;
  ExceptionCollector errors;
  for (o.first_column = 0; o.first_column < p.b.cols; o.first_column += kColumnBlock) {
    o.columns = std::min(kColumnBlock, p.b.cols - o.first_column);
    load_block(o);
#pragma omp parallel num_threads(thread_count())
    {
      Workspace& ws = workspaces[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1) reduction(+ : recomputed)
      for (int64_t tile = 0; tile < row_tiles; ++tile) {
        errors.run([&] { recomputed += row_tile<Output>(o, tile * kRowTile, p.out, ws); });
      }
    }
    errors.rethrow_first();  // Ctrl-C is polled by errors.run between tiles
  }
  return recomputed;
}

}  // namespace

int64_t exact_matmul_cpu(const ExactMatmulProblem& p) {
  validate(p);
  if (p.a.rows == 0 || p.b.cols == 0) return 0;
  knn::ensure_single_threaded_blas();
  switch (p.a.dtype) {
    case DType::Float16: return run<Float16Output>(p);
    case DType::BFloat16: return run<BFloat16Output>(p);
    default: return run<Float32Output>(p);
  }
}

}  // namespace clipadapt::linalg
