// Greedy NMS on the CPU.
//
// The boxes are gathered in score order into separate coordinate arrays, so that the inner loop
// reads memory sequentially and compiles to SIMD code; it tests every later box rather than
// branching on the ones already suppressed.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sort.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../nms.h"

namespace polarmask {
namespace {

template <typename scalar_t>
int64_t nms_cpu_kernel(const at::Tensor& boxes, const at::Tensor& order, double iou_threshold,
                       int64_t offset, int64_t* keep) {
  const int64_t num_boxes = boxes.size(0);
  const scalar_t* box = boxes.data_ptr<scalar_t>();
  const int64_t* order_ptr = order.data_ptr<int64_t>();
  const scalar_t off = static_cast<scalar_t>(offset);
  const scalar_t threshold = threshold_below<scalar_t>(iou_threshold);

  std::vector<scalar_t> x1(num_boxes), y1(num_boxes), x2(num_boxes), y2(num_boxes);
  std::vector<scalar_t> area(num_boxes);
  for (int64_t k = 0; k < num_boxes; ++k) {
    const scalar_t* b = box + 4 * order_ptr[k];
    x1[k] = b[0];
    y1[k] = b[1];
    x2[k] = b[2];
    y2[k] = b[3];
    area[k] = (x2[k] - x1[k] + off) * (y2[k] - y1[k] + off);
  }

  std::vector<uint8_t> suppressed(num_boxes, 0);
  int64_t num_kept = 0;
  for (int64_t i = 0; i < num_boxes; ++i) {
    if (suppressed[i]) {
      continue;
    }
    keep[num_kept++] = order_ptr[i];
    const scalar_t ix1 = x1[i], iy1 = y1[i], ix2 = x2[i], iy2 = y2[i], iarea = area[i];
    const scalar_t* x1p = x1.data();
    const scalar_t* y1p = y1.data();
    const scalar_t* x2p = x2.data();
    const scalar_t* y2p = y2.data();
    const scalar_t* areap = area.data();
    uint8_t* suppressedp = suppressed.data();
    for (int64_t j = i + 1; j < num_boxes; ++j) {
      const scalar_t w = std::max(scalar_t(0), std::min(ix2, x2p[j]) - std::max(ix1, x1p[j]) + off);
      const scalar_t h = std::max(scalar_t(0), std::min(iy2, y2p[j]) - std::max(iy1, y1p[j]) + off);
      const scalar_t inter = w * h;
      const scalar_t iou = inter / (iarea + areap[j] - inter);
      suppressedp[j] |= static_cast<uint8_t>(iou > threshold);
    }
  }
  return num_kept;
}

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                   int64_t offset) {
  check_nms_inputs(boxes, scores, offset);
  TORCH_CHECK(boxes.device().is_cpu(), "polarmask::nms (CPU): boxes must be on the CPU");
  at::Tensor keep = at::empty({boxes.size(0)}, boxes.options().dtype(at::kLong));
  if (boxes.size(0) == 0) {
    return keep;
  }
  const at::Tensor order =
      std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor contiguous_boxes = boxes.contiguous();
  int64_t num_kept = 0;
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "polarmask::nms (CPU)", [&] {
    num_kept = nms_cpu_kernel<scalar_t>(contiguous_boxes, order, iou_threshold, offset,
                                        keep.data_ptr<int64_t>());
  });
  return keep.narrow(/*dim=*/0, /*start=*/0, /*length=*/num_kept);
}

}  // namespace

TORCH_LIBRARY_IMPL(polarmask, CPU, m) { m.impl("nms", &nms_cpu); }

}  // namespace polarmask
