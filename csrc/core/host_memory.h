// Large host workspaces: uninitialised, and backed by 2 MiB pages where the kernel offers them
// on request (transparent huge pages in "madvise" mode), so that first touching a buffer of
// hundreds of MB costs a few hundred page faults instead of tens of thousands, and the rows
// a sparse product gathers from it at random stay within the TLB's reach.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace clipadapt {

struct FreeHostMemory {
  void operator()(void* data) const { std::free(data); }
};

template <typename T>
using HostBuffer = std::unique_ptr<T[], FreeHostMemory>;

// `count` uninitialised elements; throws std::bad_alloc when the memory is not there.
template <typename T>
HostBuffer<T> allocate_workspace(size_t count) {
  constexpr size_t kHugePage = size_t(2) << 20;
  const size_t needed = count * sizeof(T);
  // Below a quarter of a huge page, plain malloc (of one byte more: malloc(0) may answer null).
  const bool huge = needed >= kHugePage / 4;
  const size_t bytes = huge ? (needed + kHugePage - 1) / kHugePage * kHugePage : needed + 1;
  void* data = huge ? std::aligned_alloc(kHugePage, bytes) : std::malloc(bytes);
  if (data == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) madvise(data, bytes, MADV_HUGEPAGE);  // advice only: refused means 4 KiB pages
#endif
  return HostBuffer<T>(static_cast<T*>(data));
}

}  // namespace clipadapt
