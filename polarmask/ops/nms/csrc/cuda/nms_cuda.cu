// Greedy NMS on the GPU, in two kernels and without copying the suppression mask to the host.
//
// The boxes are ranked by decreasing score (stable). `nms_mask_kernel` fills the mask: bit b of
// word mask[i][c] is set when box i suppresses box c*64+b (IoU above the threshold, later rank),
// for word columns c at or after the 64-box block of i. `nms_reduce_kernel`, one thread block,
// walks the ranks a block of 64 boxes at a time: one thread resolves the boxes of the block from
// their diagonal words, then all threads OR the rows of the kept boxes into the later words of
// the shared `removed` mask. The kept indices are written in rank order, so the host reads back
// only their count.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sort.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../nms.h"

namespace polarmask {
namespace {

using Mask = unsigned long long;
constexpr int kBoxesPerWord = 64;
constexpr int kReduceThreads = 512;
// The reduction keeps one bit per box in shared memory: the 48 KiB every GPU gives a block, less
// 2 KiB for its other shared arrays.
constexpr int64_t kMaxBoxes = int64_t{(48 - 2) * 1024} * 8;

// Rounded products that the compiler may not fuse into an FMA, so that IoUs equal the CPU's.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <typename scalar_t>
__device__ __forceinline__ scalar_t box_area(const scalar_t* box, scalar_t offset) {
  return mul_rn(box[2] - box[0] + offset, box[3] - box[1] + offset);
}

template <typename scalar_t>
__device__ __forceinline__ bool iou_above(const scalar_t* a, scalar_t area_a, const scalar_t* b,
                                          scalar_t area_b, scalar_t offset, scalar_t threshold) {
  const scalar_t w = max(scalar_t(0), min(a[2], b[2]) - max(a[0], b[0]) + offset);
  const scalar_t h = max(scalar_t(0), min(a[3], b[3]) - max(a[1], b[1]) + offset);
  const scalar_t inter = mul_rn(w, h);
  return inter / (area_a + area_b - inter) > threshold;
}

// Grid (col_blocks, col_blocks), kBoxesPerWord threads: block (x, y) compares the boxes of rank
// block y (one per thread) with those of rank block x >= y. With `categories` (else nullptr), only
// boxes of one category suppress each other.
template <typename scalar_t>
__global__ void nms_mask_kernel(const scalar_t* __restrict__ boxes,
                                const int64_t* __restrict__ order,
                                const int64_t* __restrict__ categories, int64_t num_boxes,
                                int64_t col_blocks, scalar_t offset, scalar_t threshold,
                                Mask* __restrict__ mask) {
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  if (row_block > col_block) {
    return;
  }
  const int row_size = min(num_boxes - row_block * kBoxesPerWord, int64_t{kBoxesPerWord});
  const int col_size = min(num_boxes - col_block * kBoxesPerWord, int64_t{kBoxesPerWord});

  __shared__ scalar_t col_boxes[kBoxesPerWord][4];
  __shared__ scalar_t col_areas[kBoxesPerWord];
  __shared__ int64_t col_categories[kBoxesPerWord];
  const int t = threadIdx.x;
  if (t < col_size) {
    const int64_t index = order[col_block * kBoxesPerWord + t];
    const scalar_t* box = boxes + 4 * index;
    for (int k = 0; k < 4; ++k) {
      col_boxes[t][k] = box[k];
    }
    col_areas[t] = box_area(box, offset);
    col_categories[t] = categories == nullptr ? 0 : categories[index];
  }
  __syncthreads();
  if (t >= row_size) {
    return;
  }
  const int64_t row = row_block * kBoxesPerWord + t;
  const int64_t row_index = order[row];
  scalar_t row_box[4];
  const scalar_t* box = boxes + 4 * row_index;
  for (int k = 0; k < 4; ++k) {
    row_box[k] = box[k];
  }
  const scalar_t row_area = box_area(row_box, offset);
  const int64_t row_category = categories == nullptr ? 0 : categories[row_index];
  Mask bits = 0;
  for (int c = row_block == col_block ? t + 1 : 0; c < col_size; ++c) {
    if (col_categories[c] == row_category &&
        iou_above(row_box, row_area, col_boxes[c], col_areas[c], offset, threshold)) {
      bits |= Mask{1} << c;
    }
  }
  mask[row * col_blocks + col_block] = bits;
}

// One block of kReduceThreads threads; `col_blocks` words of dynamic shared memory.
__global__ void nms_reduce_kernel(const Mask* __restrict__ mask, const int64_t* __restrict__ order,
                                  int64_t num_boxes, int col_blocks, int64_t* __restrict__ keep,
                                  int64_t* __restrict__ num_kept) {
  extern __shared__ Mask removed[];
  __shared__ Mask diagonal[2][kBoxesPerWord];
  __shared__ int kept_rows[kBoxesPerWord];
  __shared__ int num_kept_rows;
  __shared__ int64_t num_kept_before;

  const int t = threadIdx.x;
  for (int c = t; c < col_blocks; c += blockDim.x) {
    removed[c] = 0;
  }
  if (t < min(num_boxes, int64_t{kBoxesPerWord})) {
    diagonal[0][t] = mask[t * int64_t{col_blocks}];
  }
  if (t == 0) {
    num_kept_before = 0;
  }
  __syncthreads();

  for (int block = 0; block < col_blocks; ++block) {
    const int64_t base = int64_t{block} * kBoxesPerWord;
    const int size = min(num_boxes - base, int64_t{kBoxesPerWord});
    if (t == 0) {
      const Mask* diag = diagonal[block & 1];
      const Mask in_block = size == kBoxesPerWord ? ~Mask{0} : (Mask{1} << size) - 1;
      Mask removed_here = removed[block];
      Mask candidates = in_block & ~removed_here;
      int count = 0;
      while (candidates != 0) {
        const int b = __ffsll(candidates) - 1;
        kept_rows[count++] = b;
        removed_here |= diag[b];
        // Only boxes ranked after b are left to decide; (2 << 63) - 1 wraps to all ones.
        candidates = in_block & ~removed_here & ~((Mask{2} << b) - 1);
      }
      num_kept_rows = count;
    }
    __syncthreads();

    const int count = num_kept_rows;
    if (t < count) {
      keep[num_kept_before + t] = order[base + kept_rows[t]];
    }
    const int next = block + 1;
    if (next < col_blocks &&
        t < min(num_boxes - next * int64_t{kBoxesPerWord}, int64_t{kBoxesPerWord})) {
      diagonal[next & 1][t] = mask[(next * int64_t{kBoxesPerWord} + t) * col_blocks + next];
    }
    const int later_words = col_blocks - next;
    for (int item = t; item < count * later_words; item += blockDim.x) {
      const int64_t row = base + kept_rows[item / later_words];
      const int word = next + item % later_words;
      atomicOr(&removed[word], mask[row * col_blocks + word]);
    }
    __syncthreads();
    if (t == 0) {
      num_kept_before += count;
    }
  }
  if (t == 0) {
    *num_kept = num_kept_before;
  }
}

// Raises on a failed kernel launch; names the fix when the library lacks code for this GPU (the
// "no kernel image" error of the original PolarMask on newer GPUs).
void check_launch(const char* kernel) {
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error != cudaErrorNoKernelImageForDevice, "polarmask::nms (CUDA): ", kernel,
              ": polarmask._C has no code for this GPU; rebuild it for the GPU's compute "
              "capability, e.g. `TORCH_CUDA_ARCH_LIST=7.5 pip install --no-build-isolation -e .`");
  TORCH_CHECK(error == cudaSuccess, "polarmask::nms (CUDA): ", kernel, ": ",
              cudaGetErrorString(error));
}

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                    int64_t offset, const std::optional<at::Tensor>& categories) {
  check_nms_inputs(boxes, scores, offset, categories);
  TORCH_CHECK(boxes.is_cuda(), "polarmask::nms (CUDA): boxes must be CUDA tensors");
  const int64_t num_boxes = boxes.size(0);
  TORCH_CHECK(num_boxes <= kMaxBoxes, "polarmask::nms (CUDA): ", num_boxes, " boxes exceed the ",
              kMaxBoxes,
              " one call supports; keep the top-scoring ones first (e.g. nms_pre in test_cfg)");
  const c10::cuda::CUDAGuard device_guard(boxes.device());
  at::Tensor keep = at::empty({num_boxes}, boxes.options().dtype(at::kLong));
  if (num_boxes == 0) {
    return keep;
  }
  const at::Tensor order =
      std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor contiguous_boxes = boxes.contiguous();
  const at::Tensor contiguous_categories =
      categories.has_value() ? categories->contiguous() : at::Tensor();
  const int64_t* categories_ptr =
      contiguous_categories.defined() ? contiguous_categories.data_ptr<int64_t>() : nullptr;
  const int col_blocks = static_cast<int>((num_boxes + kBoxesPerWord - 1) / kBoxesPerWord);
  at::Tensor mask = at::empty({num_boxes * col_blocks}, boxes.options().dtype(at::kLong));
  at::Tensor num_kept = at::empty({1}, boxes.options().dtype(at::kLong));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  Mask* mask_ptr = reinterpret_cast<Mask*>(mask.data_ptr<int64_t>());

  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "polarmask::nms (CUDA)", [&] {
    nms_mask_kernel<scalar_t><<<dim3(col_blocks, col_blocks), kBoxesPerWord, 0, stream>>>(
        contiguous_boxes.data_ptr<scalar_t>(), order.data_ptr<int64_t>(), categories_ptr,
        num_boxes, col_blocks, static_cast<scalar_t>(offset),
        threshold_below<scalar_t>(iou_threshold), mask_ptr);
  });
  check_launch("nms_mask_kernel");
  nms_reduce_kernel<<<1, kReduceThreads, col_blocks * sizeof(Mask), stream>>>(
      mask_ptr, order.data_ptr<int64_t>(), num_boxes, col_blocks, keep.data_ptr<int64_t>(),
      num_kept.data_ptr<int64_t>());
  check_launch("nms_reduce_kernel");
  return keep.narrow(/*dim=*/0, /*start=*/0, /*length=*/num_kept.item<int64_t>());
}

}  // namespace

TORCH_LIBRARY_IMPL(polarmask, CUDA, m) { m.impl("nms", &nms_cuda); }

}  // namespace polarmask
