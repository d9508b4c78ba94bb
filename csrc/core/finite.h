// NaN/Inf screening of a whole input, used by the bindings when check_finite is on.
#pragma once
#include "core/array.h"

namespace clipadapt {

bool has_nonfinite_cpu(const Matrix& values);
// Runs on `stream` and waits for the one-byte answer.
bool has_nonfinite_cuda(const Matrix& values, void* stream);

}  // namespace clipadapt
