#include <string>

#include "core/errors.h"
#include "knn/knn.h"

namespace clipadapt::knn {

void validate(const KnnProblem& p) {
  require(p.queries.cols >= 1, "queries: need at least one feature column (d >= 1)");
  require(p.queries.cols == p.database.cols,
          "queries and database: feature dimensions differ (" + std::to_string(p.queries.cols) +
              " vs " + std::to_string(p.database.cols) + "); both must be [rows, d] with the same d");
  if (p.queries.dtype != p.database.dtype) {
    throw UnsupportedType(std::string("queries and database: dtypes differ (") +
                          dtype_name(p.queries.dtype) + " vs " + dtype_name(p.database.dtype) +
                          "); cast one to the other's dtype");
  }
  const int64_t available = p.database.rows - (p.exclude_self ? 1 : 0);
  require(p.k >= 1, "k: must be >= 1, got " + std::to_string(p.k));
  require(p.k <= available,
          "k: " + std::to_string(p.k) + " exceeds the " + std::to_string(available) +
              " candidate rows of database" + (p.exclude_self ? " (excluding self)" : "") +
              "; lower k or add database rows");
  require(!p.exclude_self || p.queries.rows == p.database.rows,
          "exclude_self: queries and database must be the same rows (got " +
              std::to_string(p.queries.rows) + " and " + std::to_string(p.database.rows) + ")");
  require(p.scores.rows == p.queries.rows && p.scores.cols == p.k && p.scores.dtype == DType::Float32,
          "scores (output): must be float32 [nq, k]");
  require(p.indices.rows == p.queries.rows && p.indices.cols == p.k && p.indices.dtype == DType::Int64,
          "indices (output): must be int64 [nq, k]");
}

void validate(const SquaredNormsProblem& p) {
  require(p.x.dtype == DType::Float32 || p.x.dtype == DType::Float16 || p.x.dtype == DType::BFloat16,
          "x: rows must be float32, float16 or bfloat16");
  require(p.out.dtype == DType::Float64 && p.out.rows == p.x.rows && p.out.cols == 1,
          "out: must be float64 [n], one entry per row of x");
}

}  // namespace clipadapt::knn
