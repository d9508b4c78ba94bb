// CPU bounded top-k: a binary heap of k candidates with the worst at the root, ordered by
// ranks_before (topk_rules.h). Used by the k-NN and IVF CPU kernels.
#pragma once
#include <algorithm>
#include <cstdint>

#include "knn/topk_rules.h"

namespace clipadapt::knn {

struct Candidate {
  float key;
  int64_t index;
};

// A function object rather than a function, so that std::sort and friends inline it.
inline constexpr auto better = [](const Candidate& a, const Candidate& b) {
  return ranks_before(a.key, a.index, b.key, b.index);
};

// An empty heap: k sentinels that any real candidate beats.
inline void reset_heap(Candidate* heap, int64_t k) { std::fill(heap, heap + k, Candidate{-INFINITY, kEmptyIndex}); }

// Replaces the root (the worst entry) by `incoming` and restores the heap order.
inline void replace_worst(Candidate* heap, int64_t k, Candidate incoming) {
  int64_t hole = 0;
  while (true) {
    int64_t child = 2 * hole + 1;
    if (child >= k) break;
    if (child + 1 < k && better(heap[child], heap[child + 1])) ++child;  // the worse child
    if (!better(incoming, heap[child])) break;
    heap[hole] = heap[child];
    hole = child;
  }
  heap[hole] = incoming;
}

inline void offer(Candidate* heap, int64_t k, Candidate candidate) {
  if (better(candidate, heap[0])) replace_worst(heap, k, candidate);
}

// Sorts the heap best first and writes it as reported scores and indices (row of length k).
inline void write_sorted(Candidate* heap, int64_t k, Metric metric, float* scores, int64_t* indices) {
  std::sort(heap, heap + k, better);
  for (int64_t j = 0; j < k; ++j) {
    scores[j] = score_from_key(heap[j].key, metric);
    indices[j] = reported_index(heap[j].index);
  }
}

}  // namespace clipadapt::knn
