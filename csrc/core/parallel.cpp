#include "core/parallel.h"

#include <omp.h>

#include <chrono>
#include <thread>

#include "core/errors.h"

namespace clipadapt {
namespace {

std::atomic<int> configured_threads{0};  // 0: not set yet, OpenMP's default at first use
std::atomic<bool (*)()> installed_poll{nullptr};
std::thread::id poll_thread;             // the thread that installed the poll (Python's main thread)
std::atomic<int64_t> last_poll_ns{0};
constexpr int64_t kPollIntervalNs = 50'000'000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int thread_count() {
  int threads = configured_threads.load(std::memory_order_relaxed);
  if (threads == 0) {
    int fresh = omp_get_max_threads();  // OMP_NUM_THREADS or the cores, read once
    configured_threads.compare_exchange_strong(threads, fresh);
    threads = configured_threads.load(std::memory_order_relaxed);
  }
  return threads;
}

void set_thread_count(int threads) {
  require(threads >= 1, "threads: must be >= 1, got " + std::to_string(threads));
  configured_threads.store(threads, std::memory_order_relaxed);
}

void set_interrupt_poll(bool (*poll)()) {
  poll_thread = std::this_thread::get_id();
  installed_poll.store(poll);
}

bool interrupt_requested() {
  bool (*poll)() = installed_poll.load(std::memory_order_relaxed);
  if (poll == nullptr || std::this_thread::get_id() != poll_thread) return false;
  const int64_t now = now_ns();
  if (now - last_poll_ns.load(std::memory_order_relaxed) < kPollIntervalNs) return false;
  last_poll_ns.store(now, std::memory_order_relaxed);
  return poll();
}

}  // namespace clipadapt
