// OpenMP helpers shared by the CPU kernels: the library's own thread count, exceptions out of
// parallel regions, and Ctrl-C polling.
#pragma once
#include <atomic>
#include <exception>
#include <mutex>
#include <stdexcept>

namespace clipadapt {

// The number of threads every CPU kernel runs with: a process-wide setting of clipadapt's own
// (`#pragma omp parallel num_threads(thread_count())`), so that neither the calling thread's
// OpenMP state nor another library's omp_set_num_threads (torch.set_num_threads) changes it.
int thread_count();
void set_thread_count(int threads);

// A long call was interrupted (Ctrl-C); the bindings turn it into the pending Python exception.
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

// Returns true when the user asked to stop (the bindings install a poll that checks Python's
// pending signals). Cheap: polls at most every few tens of milliseconds, and only from the
// thread that called into the library.
bool interrupt_requested();
void set_interrupt_poll(bool (*poll)());

// An exception must not escape an OpenMP region (that terminates the process), so work inside
// one runs through ExceptionCollector and is rethrown after it. `run` also polls for Ctrl-C:
// once interrupted, the remaining work items are skipped and rethrow_first throws Interrupted.
class ExceptionCollector {
 public:
  template <typename Work>
  void run(Work&& work) noexcept {
    if (stopped_.load(std::memory_order_relaxed)) return;
    try {
      if (interrupt_requested()) throw Interrupted();
      work();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      stopped_.store(true, std::memory_order_relaxed);
    }
  }
  void rethrow_first() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr first_;
  std::atomic<bool> stopped_{false};
};

}  // namespace clipadapt
