// CUDA block CG: the dense [n, C] column operations of block_cg.h on device buffers, all on
// the caller's stream. The per-column scalars stay on the host (block_cg.h): each column_dots
// reads C doubles back (one stream synchronisation), advance uploads C scalars, redirect 2 C.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/cuda_check.h"
#include "core/cuda_memory.h"
#include "sparse/block_cg.h"
#include "sparse/sparse.h"

namespace clipadapt::sparse {
namespace {

// Rows per partial sum of a column dot product, as conjugate_gradient_cpu. Fixed, so the sums
// do not depend on the launch.
constexpr int64_t kDotBlockRows = 1024;
constexpr int kWarp = 32;
constexpr int kDotThreads = 256;  // kDotGroups row groups x 32 column lanes
constexpr int kDotGroups = kDotThreads / kWarp;

// partial[block, c] = sum over rows i of row block `block` of a[i, c] b[i, c], in double. Thread
// (group g, lane l) sums rows first + g, first + g + kDotGroups, ... of column c0 + l in order;
// group 0 then adds the kDotGroups sums in group order. Deterministic.
template <typename T>
__global__ void __launch_bounds__(kDotThreads)
    column_dot_partials(const T* a, const T* b, int64_t rows, int64_t columns, double* partial) {
  __shared__ double sums[kDotThreads];
  const int lane = static_cast<int>(threadIdx.x % kWarp), group = static_cast<int>(threadIdx.x / kWarp);
  const int64_t block = blockIdx.x;
  const int64_t first = block * kDotBlockRows;
  const int64_t stop = rows < first + kDotBlockRows ? rows : first + kDotBlockRows;
  for (int64_t c0 = 0; c0 < columns; c0 += kWarp) {
    const int64_t c = c0 + lane;
    double sum = 0.0;
    if (c < columns) {
      for (int64_t i = first + group; i < stop; i += kDotGroups) {
        sum += double(a[i * columns + c]) * double(b[i * columns + c]);
      }
    }
    sums[threadIdx.x] = sum;
    __syncthreads();
    if (group == 0 && c < columns) {
      double total = 0.0;
      for (int g = 0; g < kDotGroups; ++g) total += sums[g * kWarp + lane];
      partial[block * columns + c] = total;
    }
    __syncthreads();  // sums is reused by the next column chunk
  }
}

// out[c] = sum of partial[block, c] over the row blocks in block order.
__global__ void sum_partials(const double* partial, int64_t blocks, int64_t columns, double* out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < columns; c += stride) {
    double total = 0.0;
    for (int64_t block = 0; block < blocks; ++block) total += partial[block * columns + c];
    out[c] = total;
  }
}

// r -= step_c q over [rows, C] (size = rows C).
template <typename T>
__global__ void advance_kernel(T* r, const T* q, const T* steps, int64_t size, int64_t columns) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t at = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; at < size; at += stride) {
    r[at] -= steps[at % columns] * q[at];
  }
}

// x += step_c p, then p = r + beta_c p over [rows, C]; scalars holds the C steps, then the C betas.
template <typename T>
__global__ void redirect_kernel(T* x, T* p, const T* r, const T* scalars, int64_t size, int64_t columns) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t at = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; at < size; at += stride) {
    const int64_t column = at % columns;
    const T direction = p[at];
    x[at] += scalars[column] * direction;
    p[at] = r[at] + scalars[columns + column] * direction;
  }
}

// A [rows, C] row-major device matrix: the caller's x (output) or b (input, only ever read),
// or a scratch buffer.
template <typename T>
struct DeviceDense {
  T* data;
};

template <typename T>
class CudaOps {
 public:
  CudaOps(const ConjugateGradientProblem& p, cudaStream_t stream)
      : p_(p), stream_(stream), rows_(p.b.rows), columns_(p.b.cols), size_(rows_ * columns_),
        dot_blocks_((rows_ + kDotBlockRows - 1) / kDotBlockRows), r_storage_(size_, stream),
        direction_storage_(size_, stream), product_storage_(size_, stream), partial_(dot_blocks_ * columns_, stream),
        dots_(columns_, stream), scalars_(2 * columns_, stream), host_scalars_(2 * static_cast<size_t>(columns_)),
        x_{p.x.as<T>()}, b_{p.b.as<T>()}, r_{r_storage_.get()}, direction_{direction_storage_.get()},
        product_{product_storage_.get()} {}

  DeviceDense<T>& solution() { return x_; }
  DeviceDense<T>& residual() { return r_; }
  DeviceDense<T>& direction() { return direction_; }
  DeviceDense<T>& product() { return product_; }
  const DeviceDense<T>& rhs() { return b_; }

  void zero(DeviceDense<T>& m) {
    if (size_ > 0) CLIPADAPT_CUDA_CHECK(cudaMemsetAsync(m.data, 0, bytes(), stream_));  // all-zero bits are +0.0
  }

  void copy(const DeviceDense<T>& from, DeviceDense<T>& to) {
    if (size_ > 0) {
      CLIPADAPT_CUDA_CHECK(cudaMemcpyAsync(to.data, from.data, bytes(), cudaMemcpyDeviceToDevice, stream_));
    }
  }

  void column_dots(const DeviceDense<T>& a, const DeviceDense<T>& b, std::vector<double>& out) {
    if (columns_ == 0) return;
    if (dot_blocks_ > 0) {
      column_dot_partials<T><<<static_cast<unsigned>(dot_blocks_), kDotThreads, 0, stream_>>>(
          a.data, b.data, rows_, columns_, partial_.get());
      CLIPADAPT_CUDA_CHECK_LAUNCH();
    }
    sum_partials<<<grid_for(columns_), kGridStrideThreads, 0, stream_>>>(partial_.get(), dot_blocks_, columns_,
                                                                         dots_.get());
    CLIPADAPT_CUDA_CHECK_LAUNCH();
    CLIPADAPT_CUDA_CHECK(cudaMemcpyAsync(out.data(), dots_.get(), static_cast<size_t>(columns_) * sizeof(double),
                                         cudaMemcpyDeviceToHost, stream_));
    CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // q = p - alpha S p, pq = column dots of p and q
  void apply(const DeviceDense<T>& p, DeviceDense<T>& q, std::vector<double>& pq) {
    SpmmProblem spmm;
    spmm.a = p_.s;
    spmm.x = view(p);
    spmm.y = view(p);
    spmm.out = view(q);
    spmm.scale_ax = -p_.alpha;
    spmm.scale_y = 1.0;
    spmm.stream = stream_;
    spmm_cuda(spmm);
    column_dots(p, q, pq);
  }

  // r -= step_c q, rr = column dots of r with itself
  void advance(DeviceDense<T>& r, const DeviceDense<T>& q, const std::vector<double>& steps,
               std::vector<double>& rr) {
    if (size_ > 0) {
      upload_scalars(steps);
      advance_kernel<T><<<grid_for(size_), kGridStrideThreads, 0, stream_>>>(r.data, q.data, scalars_.get(), size_,
                                                                             columns_);
      CLIPADAPT_CUDA_CHECK_LAUNCH();
    }
    column_dots(r, r, rr);
  }

  // x += step_c p, then p = r + beta_c p
  void redirect(DeviceDense<T>& x, DeviceDense<T>& p, const DeviceDense<T>& r, const std::vector<double>& steps,
                const std::vector<double>& betas) {
    if (size_ == 0) return;
    std::vector<double> scalars(steps);
    scalars.insert(scalars.end(), betas.begin(), betas.end());
    upload_scalars(scalars);
    redirect_kernel<T><<<grid_for(size_), kGridStrideThreads, 0, stream_>>>(x.data, p.data, r.data, scalars_.get(),
                                                                            size_, columns_);
    CLIPADAPT_CUDA_CHECK_LAUNCH();
  }

  void write_results(const std::vector<int64_t>& iterations, const std::vector<double>& residuals) {
    if (columns_ == 0) return;
    to_output(p_.iterations, iterations.data(), static_cast<size_t>(columns_) * sizeof(int64_t));
    to_output(p_.residuals, residuals.data(), static_cast<size_t>(columns_) * sizeof(double));
    // The sources are the caller's vectors, gone when this returns: finish the copies first
    // rather than rely on the driver staging pageable memory before cudaMemcpyAsync returns.
    CLIPADAPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  size_t bytes() const { return static_cast<size_t>(size_) * sizeof(T); }

  Matrix view(const DeviceDense<T>& m) const {
    Matrix out;
    out.data = m.data;
    out.dtype = p_.s.values.dtype;
    out.device = p_.s.indptr.device;
    out.rows = rows_;
    out.cols = columns_;
    return out;
  }

  // Per-column scalars (C or 2 C), rounded to T as conjugate_gradient_cpu does, into scalars_. A copy
  // from pageable host memory returns once the source is staged, so host_scalars_ may be
  // refilled by the next call; the stream orders the copy after the kernels that read the
  // previous scalars.
  void upload_scalars(const std::vector<double>& values) {
    std::transform(values.begin(), values.end(), host_scalars_.begin(), [](double v) { return static_cast<T>(v); });
    CLIPADAPT_CUDA_CHECK(cudaMemcpyAsync(scalars_.get(), host_scalars_.data(),
                                         values.size() * sizeof(T), cudaMemcpyHostToDevice, stream_));
  }

  // Per-column results into an output on the device (or, should the caller pass one, the host).
  void to_output(const Matrix& target, const void* source, size_t count) {
    if (target.device.kind == DeviceKind::CUDA) {
      CLIPADAPT_CUDA_CHECK(cudaMemcpyAsync(target.data, source, count, cudaMemcpyHostToDevice, stream_));
    } else {
      std::memcpy(target.data, source, count);
    }
  }

  const ConjugateGradientProblem& p_;
  cudaStream_t stream_;
  int64_t rows_, columns_, size_, dot_blocks_;
  Scratch<T> r_storage_, direction_storage_, product_storage_;
  Scratch<double> partial_;  // [dot_blocks, C]
  Scratch<double> dots_;     // [C]
  Scratch<T> scalars_;       // [2 C]: the steps, or the steps then the betas, of the current update
  std::vector<T> host_scalars_;
  DeviceDense<T> x_, b_, r_, direction_, product_;
};

template <typename T>
void solve(const ConjugateGradientProblem& p, cudaStream_t stream) {
  CudaOps<T> ops(p, stream);
  block_conjugate_gradient(p, ops);
}

}  // namespace

void conjugate_gradient_cuda(const ConjugateGradientProblem& p) {
  validate(p);
  DeviceGuard guard(p.s.indptr.device.index);
  auto stream = static_cast<cudaStream_t>(p.stream);
  if (p.s.values.dtype == DType::Float64) {
    solve<double>(p, stream);
  } else {
    solve<float>(p, stream);
  }
}

}  // namespace clipadapt::sparse
