// Error types thrown by kernels and bindings. The bindings translate them to Python:
// InvalidArgument -> ValueError, UnsupportedType -> TypeError, OutOfMemory -> MemoryError,
// DeviceError -> RuntimeError. Messages name the argument and the fix.
#pragma once
#include <stdexcept>
#include <string>

namespace clipadapt {

struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct UnsupportedType : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void require(bool condition, const std::string& message) {
  if (!condition) throw InvalidArgument(message);
}

}  // namespace clipadapt
