// Dot-product tiles of bfloat16 rows on AVX-512 BF16 (vdpbf16ps) for the CPU k-NN fast pass:
// the rows are read as bfloat16 (half the bytes of widening them to float32 for sgemm) and
// multiplied at up to twice the float32 rate. Products are exact in float32 and summed in
// float32, with subnormals flushed to zero (exact_score.h key_error_bound accounts for that).
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

}  // namespace clipadapt::knn
