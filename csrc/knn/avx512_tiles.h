// Dot-product tiles of our own on AVX-512 for the CPU k-NN fast pass, 8 queries x 32 packed
// database rows per micro-tile:
// - bfloat16 rows on AVX-512 BF16 (vdpbf16ps): read as bfloat16 (half the bytes of widening
//   them to float32 for sgemm) and multiplied at up to twice the float32 rate; products exact in
//   float32, summed in float32, subnormals flushed to zero (key_error_bound accounts for that);
// - float32 rows on AVX-512F (vfmadd231ps);
// - float64 rows on AVX-512F (vfmadd231pd, 8 queries x 16 rows), for exact_matmul's estimates.
#pragma once
#include <cstdint>
#include <vector>

namespace clipadapt::knn {

// The CPU has AVX-512 BF16 and CLIPADAPT_CPU_BF16 is not "0" (read once).
bool bf16_tiles_available();

// Database rows [count, d] repacked for the kernel: blocks of 32 rows, each block holding, for
// every pair of columns, the 32 rows' two values side by side (odd d padded with a zero).
void pack_bf16_rows(const uint16_t* rows, int64_t count, int64_t d, std::vector<uint16_t>& packed);

// Query rows [count, d] with rows of an even length (a zero appended when d is odd); returns
// `rows` itself when d is even, else the copy in `padded`.
const uint16_t* even_bf16_rows(const uint16_t* rows, int64_t count, int64_t d, std::vector<uint16_t>& padded);

// out[qn, xn] = Q X^T for queries from even_bf16_rows and a database tile from pack_bf16_rows.
void bf16_dot_tile(const uint16_t* queries, int64_t qn, const uint16_t* packed, int64_t xn, int64_t d, float* out);

// The float32 twins, on AVX-512F (vfmadd231ps, 8 queries x 32 rows per micro-tile), so that the
// fast pass runs at the CPU's float32 rate whatever BLAS kernel OpenBLAS picks for it (AMD CPUs
// and OPENBLAS_CORETYPE=Haswell get 256-bit kernels). Used when the CPU has AVX-512F and
// CLIPADAPT_CPU_FP32_TILES is not "0" (read once).
bool float32_tiles_available();

// Database rows [count, d] repacked: blocks of 32 rows, each column's 32 values side by side.
void pack_float32_rows(const float* rows, int64_t count, int64_t d, std::vector<float>& packed);

// out[qn, xn] = Q X^T for float32 query rows [qn, d] and a tile from pack_float32_rows.
void float32_dot_tile(const float* queries, int64_t qn, const float* packed, int64_t xn, int64_t d, float* out);

// The float64 twins (vfmadd231pd, 8 queries x 16 packed rows per micro-tile), for the float64
// estimates of exact_matmul; used when the CPU has AVX-512F and CLIPADAPT_CPU_FP64_TILES is
// not "0" (read once). Blocks of 16 rows: the tile of rows [16 i, ...) starts at packed + 16 i d;
// float64_packed_size elements in all (the last block padded with zeros).
bool float64_tiles_available();
int64_t float64_packed_size(int64_t count, int64_t d);
void pack_float64_rows(const double* rows, int64_t count, int64_t d, double* packed);
void float64_dot_tile(const double* queries, int64_t qn, const double* packed, int64_t xn, int64_t d, double* out);

}  // namespace clipadapt::knn
