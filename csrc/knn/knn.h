// Exact k-nearest-neighbour search: the entry point shared by the CPU and CUDA kernels.
//
// For every query row q_i, returns the k database rows x_j that rank best under the metric,
// best first; ties in score go to the smaller database index. Scores are computed in tiles
// (query tile x database tile) and the top-k selection is fused with the tile, so no
// nq x n matrix is ever written.
#pragma once
#include <cstdint>

#include "core/array.h"

namespace clipadapt::knn {

enum class Metric {
  InnerProduct,  // <q, x>, larger is better
  Cosine,        // <q, x> / (|q| |x|), larger is better; a zero row has cosine 0 with everything
  L2,            // |q - x|^2 (clamped at 0), smaller is better
};

enum class Precision {
  Exact,  // float32 inputs multiplied in float32 (fp16/bf16 inputs always use their tensor cores)
  TF32,   // float32 inputs rounded to tf32 on the GPU tensor cores; ignored on the CPU
};

struct KnnProblem {
  Matrix queries;    // [nq, d] float32 / float16 / bfloat16
  Matrix database;   // [n, d], same dtype and device as queries
  int64_t k = 1;     // 1 <= k <= n (n - 1 with exclude_self)
  Metric metric = Metric::Cosine;
  Precision precision = Precision::Exact;
  bool exclude_self = false;  // query row i is database row i: never return index i for it
  Matrix scores;     // out: [nq, k] float32
  Matrix indices;    // out: [nq, k] int64
  void* stream = nullptr;  // CUDA stream (cudaStream_t) for device inputs
};

// Checks the shapes and k (throws InvalidArgument naming the argument).
void validate(const KnnProblem& problem);

void knn_cpu(const KnnProblem& problem);
void knn_cuda(const KnnProblem& problem);

// The canonical squared norm (exact_score.h) of every row: what each exact score of the row
// uses, for callers that score the same rows again and again (an IVF index keeps its lists').
struct SquaredNormsProblem {
  Matrix x;                // [n, d] float32 / float16 / bfloat16
  Matrix out;              // out: float64 [n]
  void* stream = nullptr;
};

void validate(const SquaredNormsProblem& problem);
void squared_norms_cpu(const SquaredNormsProblem& problem);
void squared_norms_cuda(const SquaredNormsProblem& problem);

}  // namespace clipadapt::knn
