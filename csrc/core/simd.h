// Run-time dispatch of hot loops to AVX-512 / AVX2 while the wheel targets x86-64-v2: put
// CLIPADAPT_VECTOR_CLONES before a non-template function definition.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define CLIPADAPT_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLIPADAPT_VECTOR_CLONES
#endif

// A helper of a CLIPADAPT_VECTOR_CLONES function: inlined into each clone, so compiled for
// the clone's instruction set.
#if defined(__GNUC__)
#define CLIPADAPT_CLONE_INLINE inline __attribute__((always_inline))
#else
#define CLIPADAPT_CLONE_INLINE inline
#endif
