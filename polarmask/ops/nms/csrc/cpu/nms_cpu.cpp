// Greedy NMS on the CPU.
//
// The boxes are gathered in score order into separate coordinate arrays, so that the inner loop
// reads memory sequentially and compiles to SIMD code; it tests every later box rather than
// branching on the ones already suppressed. With categories, a box only suppresses later boxes of
// its own category.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/_unique.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/max.h>
#include <ATen/ops/min.h>
#include <ATen/ops/sort.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "../nms.h"

namespace polarmask {
namespace {

// Categories are compared as integers as wide as the coordinates, so that the inner loop's lanes
// line up and it stays vectorised (an int64 compare beside float32 arithmetic made it 10x slower).
template <typename scalar_t>
using category_t = std::conditional_t<sizeof(scalar_t) == 4, int32_t, int64_t>;

template <typename scalar_t, bool kByCategory>
int64_t nms_cpu_kernel(const at::Tensor& boxes, const at::Tensor& order, const int64_t* category,
                       double iou_threshold, int64_t offset, int64_t* keep) {
  const int64_t num_boxes = boxes.size(0);
  const scalar_t* box = boxes.data_ptr<scalar_t>();
  const int64_t* order_ptr = order.data_ptr<int64_t>();
  const scalar_t off = static_cast<scalar_t>(offset);
  const scalar_t threshold = threshold_below<scalar_t>(iou_threshold);

  std::vector<scalar_t> x1(num_boxes), y1(num_boxes), x2(num_boxes), y2(num_boxes);
  std::vector<scalar_t> area(num_boxes);
  std::vector<category_t<scalar_t>> ranked_category(kByCategory ? num_boxes : 0);
  for (int64_t k = 0; k < num_boxes; ++k) {
    const scalar_t* b = box + 4 * order_ptr[k];
    x1[k] = b[0];
    y1[k] = b[1];
    x2[k] = b[2];
    y2[k] = b[3];
    area[k] = (x2[k] - x1[k] + off) * (y2[k] - y1[k] + off);
    if constexpr (kByCategory) {
      ranked_category[k] = static_cast<category_t<scalar_t>>(category[order_ptr[k]]);
    }
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
    const category_t<scalar_t>* categoryp = ranked_category.data();
    const category_t<scalar_t> icategory = kByCategory ? ranked_category[i] : 0;
    uint8_t* suppressedp = suppressed.data();
    for (int64_t j = i + 1; j < num_boxes; ++j) {
      const scalar_t w = std::max(scalar_t(0), std::min(ix2, x2p[j]) - std::max(ix1, x1p[j]) + off);
      const scalar_t h = std::max(scalar_t(0), std::min(iy2, y2p[j]) - std::max(iy1, y1p[j]) + off);
      const scalar_t inter = w * h;
      const scalar_t iou = inter / (iarea + areap[j] - inter);
      bool suppress = iou > threshold;
      if constexpr (kByCategory) {
        suppress = suppress & (categoryp[j] == icategory);
      }
      suppressedp[j] |= static_cast<uint8_t>(suppress);
    }
  }
  return num_kept;
}

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                   int64_t offset, const std::optional<at::Tensor>& categories) {
  check_nms_inputs(boxes, scores, offset, categories);
  TORCH_CHECK(boxes.device().is_cpu(), "polarmask::nms (CPU): boxes must be on the CPU");
  at::Tensor keep = at::empty({boxes.size(0)}, boxes.options().dtype(at::kLong));
  if (boxes.size(0) == 0) {
    return keep;
  }
  const at::Tensor order =
      std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor contiguous_boxes = boxes.contiguous();
  at::Tensor contiguous_categories;
  if (categories.has_value()) {
    contiguous_categories = categories->contiguous();
    // Dense ids 0..K-1 where int32 could not hold the given ones.
    if (contiguous_categories.numel() > 0 &&
        (contiguous_categories.min().item<int64_t>() < std::numeric_limits<int32_t>::min() ||
         contiguous_categories.max().item<int64_t>() > std::numeric_limits<int32_t>::max())) {
      contiguous_categories = std::get<1>(at::_unique(contiguous_categories, /*sorted=*/false,
                                                      /*return_inverse=*/true));
    }
  }
  int64_t num_kept = 0;
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "polarmask::nms (CPU)", [&] {
    int64_t* keep_ptr = keep.data_ptr<int64_t>();
    if (contiguous_categories.defined()) {
      num_kept = nms_cpu_kernel<scalar_t, true>(contiguous_boxes, order,
                                                contiguous_categories.data_ptr<int64_t>(),
                                                iou_threshold, offset, keep_ptr);
    } else {
      num_kept = nms_cpu_kernel<scalar_t, false>(contiguous_boxes, order, nullptr, iou_threshold,
                                                 offset, keep_ptr);
    }
  });
  return keep.narrow(/*dim=*/0, /*start=*/0, /*length=*/num_kept);
}

}  // namespace

TORCH_LIBRARY_IMPL(polarmask, CPU, m) { m.impl("nms", &nms_cpu); }

}  // namespace polarmask
