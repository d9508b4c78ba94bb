#include <limits>
#include <string>

#include "core/errors.h"
#include "linalg/exact_matmul.h"

namespace clipadapt::linalg {

namespace {

std::string shape(const Matrix& m) { return "[" + std::to_string(m.rows) + ", " + std::to_string(m.cols) + "]"; }

}  // namespace

void validate(const ExactMatmulProblem& p) {
  if (p.a.dtype != DType::Float32 && p.a.dtype != DType::Float16 && p.a.dtype != DType::BFloat16) {
    throw UnsupportedType(std::string("a: dtype ") + dtype_name(p.a.dtype) +
                          " is not supported; use float32, float16 or bfloat16");
  }
  if (p.b.dtype != p.a.dtype) {
    throw UnsupportedType(std::string("a and b: dtypes differ (") + dtype_name(p.a.dtype) + " vs " +
                          dtype_name(p.b.dtype) + "); cast one to the other's dtype");
  }
  require(p.a.cols == p.b.rows, "a and b: inner dimensions differ (a is " + shape(p.a) + ", b is " + shape(p.b) +
                                    "); need a [M, D] and b [D, N]");
  // scipy-openblas32 takes 32-bit sizes.
  require(p.a.cols <= std::numeric_limits<int32_t>::max(), "a: D = " + std::to_string(p.a.cols) + " exceeds 2^31 - 1");
  require(p.out.dtype == p.a.dtype && p.out.rows == p.a.rows && p.out.cols == p.b.cols,
          std::string("out: must be ") + dtype_name(p.a.dtype) + " [" + std::to_string(p.a.rows) + ", " +
              std::to_string(p.b.cols) + "]");
}

}  // namespace clipadapt::linalg
