// CPU building blocks of blocked dot-product search, shared by the k-NN kernel and the IVF
// list scan: float32 views of rows for BLAS, one GEMM tile, dot products -> metric keys, and
// feeding a row of keys to a bounded heap. Defined in knn_cpu.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "core/array.h"
#include "knn/topk_heap.h"
#include "knn/topk_rules.h"

namespace clipadapt::knn {

// Parallelism comes from OpenMP over work items; BLAS calls inside one must not spawn threads.
void ensure_single_threaded_blas();

// Rows [first, first + count) of m as float32 for BLAS: float32 is read in place, 16-bit
// inputs are widened into `buffer` (scipy-openblas32 exports no bf16 GEMM).
const float* rows_for_blas(const Matrix& m, int64_t first, int64_t count, std::vector<float>& buffer);

// out[qn, xn] = Q[qn, d] X[xn, d]^T on one thread: plain dot products for small tiles, else
// the AVX-512 float32 tiles of avx512_tiles.h (X repacked into `packed`) or sgemm.
void dot_tile(const float* q, int64_t qn, const float* x, int64_t xn, int64_t d, float* out,
              std::vector<float>& packed);

// Dot products of one query -> metric keys, in place (a NaN term marks a non-finite row).
void dots_to_keys(float* row, int64_t count, float query_term, const float* database_terms, Metric metric);

// Offers `count` keys to one query's heap of k; key j belongs to row first_index + j. NaN keys
// never enter.
void offer_row(const float* keys, int64_t count, int64_t first_index, Candidate* heap, int64_t k);

}  // namespace clipadapt::knn
