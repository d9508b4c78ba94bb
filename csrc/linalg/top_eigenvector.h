// The eigenvector of the largest eigenvalue of a symmetric float64 matrix: what ReCLIP's
// projection needs of the Gram matrix R R^T of the text embeddings' QR factor (its top
// singular direction), without computing every eigenpair.
#pragma once
#include <cstdint>
#include <vector>

namespace clipadapt::linalg {

// matrix: [n, n] row-major, symmetric (its upper triangle is read), finite, n >= 1. Returns
// the unit eigenvector of its largest eigenvalue (sign as LAPACK leaves it), through LAPACK's
// dsyevr for that one eigenpair, on the OpenBLAS the library links, single-threaded (a second
// thread pool spinning beside the library's threads slowed the next call by a third).
// Throws std::invalid_argument for n < 1, std::runtime_error when LAPACK fails.
std::vector<double> top_eigenvector(const double* matrix, int64_t n);

}  // namespace clipadapt::linalg
