// One CSR row times a dense row-major matrix, shared by the CPU SpMM and the CPU block CG:
// sum[0, columns) = sum over entries [begin, end) of values[e] * x[indices[e], :]; the rows of
// entries up to `nnz` (the matrix's total) may be prefetched. Column ids are int64 (the
// caller's CSR) or int32 (block CG's relabelled copy: fewer bytes to stream each iteration).
// Defined in spmm_cpu.cpp with run-time dispatch to AVX-512 / AVX2.
#pragma once
#include <cstdint>

namespace clipadapt::sparse {

void accumulate_row(const int64_t* indices, const float* values, int64_t begin, int64_t end, int64_t nnz,
                    const float* x, int64_t columns, float* sum);
void accumulate_row(const int64_t* indices, const double* values, int64_t begin, int64_t end, int64_t nnz,
                    const double* x, int64_t columns, double* sum);
void accumulate_row(const int32_t* indices, const float* values, int64_t begin, int64_t end, int64_t nnz,
                    const float* x, int64_t columns, float* sum);
void accumulate_row(const int32_t* indices, const double* values, int64_t begin, int64_t end, int64_t nnz,
                    const double* x, int64_t columns, double* sum);

}  // namespace clipadapt::sparse
