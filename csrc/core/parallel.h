// OpenMP helpers. An exception must not escape an OpenMP region (that terminates the
// process), so work inside one runs through ExceptionCollector and is rethrown after it.
#pragma once
#include <exception>
#include <mutex>

namespace clipadapt {

class ExceptionCollector {
 public:
  template <typename Work>
  void run(Work&& work) noexcept {
    try {
      work();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow_first() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace clipadapt
