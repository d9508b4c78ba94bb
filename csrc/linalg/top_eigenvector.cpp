#include "linalg/top_eigenvector.h"

#include <lapacke.h>

#include <stdexcept>
#include <string>

#include "knn/cpu_tiles.h"

namespace clipadapt::linalg {

std::vector<double> top_eigenvector(const double* matrix, int64_t n) {
  if (n < 1) throw std::invalid_argument("matrix: must be at least 1 x 1");
  knn::ensure_single_threaded_blas();
  std::vector<double> work(matrix, matrix + n * n);  // dsyevr overwrites its input
  std::vector<double> vector(n), value(n);
  std::vector<lapack_int> support(2);
  lapack_int found = 0;
  const auto size = static_cast<lapack_int>(n);
  // range 'I' with il = iu = n: only the largest eigenpair (eigenvalues ascend).
  const lapack_int info = scipy_LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', size, work.data(), size, 0.0, 0.0,
                                               size, size, 0.0, &found, value.data(), vector.data(), 1,
                                               support.data());
  if (info != 0 || found != 1) {
    throw std::runtime_error("top_eigenvector: LAPACK dsyevr failed (info " + std::to_string(info) + ")");
  }
  return vector;
}

}  // namespace clipadapt::linalg
