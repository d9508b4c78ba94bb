#include <string>

#include "core/errors.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {
namespace {

bool is_solver_float(DType dtype) { return dtype == DType::Float32 || dtype == DType::Float64; }

void validate_csr(const Csr& a, const char* name) {
  require(a.indptr.dtype == DType::Int64 && a.indptr.rows == a.rows + 1,
          std::string(name) + ".indptr: must be int64 [rows + 1]");
  require(a.indices.dtype == DType::Int64, std::string(name) + ".indices: must be int64");
  require(a.values.rows == a.indices.rows, std::string(name) + ": indices and values differ in length");
  if (!is_solver_float(a.values.dtype)) {
    throw UnsupportedType(std::string(name) + ".values: dtype " + dtype_name(a.values.dtype) +
                          " is not supported; use float32 or float64");
  }
}

void require_matrix(const Matrix& m, const char* name, int64_t rows, int64_t cols, DType dtype) {
  require(m.rows == rows && m.cols == cols,
          std::string(name) + ": expected shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "], got [" +
              std::to_string(m.rows) + ", " + std::to_string(m.cols) + "]");
  if (m.dtype != dtype) {
    throw UnsupportedType(std::string(name) + ": dtype " + dtype_name(m.dtype) + " must be " + dtype_name(dtype) +
                          " to match the sparse matrix values");
  }
}

}  // namespace

void validate(const AffinityProblem& p) {
  require(p.neighbors.dtype == DType::Int64, "graph.indices: must be int64 [n, k]");
  if (p.similarities.dtype != DType::Float32) {
    throw UnsupportedType("graph.scores: must be float32 [n, k]");
  }
  require(p.similarities.rows == p.neighbors.rows && p.similarities.cols == p.neighbors.cols,
          "graph: indices and scores differ in shape");
  require(p.gamma > 0.0, "gamma: must be > 0, got " + std::to_string(p.gamma));
  const int64_t n = p.neighbors.rows, capacity = 2 * n * p.neighbors.cols;
  validate_csr(p.out, "out");
  require(p.out.rows == n && p.out.cols == n && p.out.indices.rows >= capacity,
          "out: must be an [n, n] CSR with room for 2 n k entries");
  require_matrix(p.degrees, "degrees", n, 1, DType::Float64);
}

void validate(const SpmmProblem& p) {
  validate_csr(p.a, "a");
  const DType dtype = p.a.values.dtype;
  require_matrix(p.x, "x", p.a.cols, p.x.cols, dtype);
  require_matrix(p.out, "out", p.a.rows, p.x.cols, dtype);
  if (p.y.data != nullptr) require_matrix(p.y, "y", p.a.rows, p.x.cols, dtype);
}

void validate(const ConjugateGradientProblem& p) {
  validate_csr(p.s, "S");
  require(p.s.rows == p.s.cols, "S: must be square");
  const DType dtype = p.s.values.dtype;
  require_matrix(p.b, "Y", p.s.rows, p.b.cols, dtype);
  require_matrix(p.x, "x (output)", p.s.rows, p.b.cols, dtype);
  require_matrix(p.iterations, "iterations (output)", p.b.cols, 1, DType::Int64);
  require_matrix(p.residuals, "residuals (output)", p.b.cols, 1, DType::Float64);
  require(p.alpha > 0.0 && p.alpha < 1.0, "alpha: must lie in (0, 1), got " + std::to_string(p.alpha));
  require(p.max_iter >= 0, "max_iter: must be >= 0");
  require(p.tol >= 0.0, "tol: must be >= 0");
}

}  // namespace clipadapt::sparse
