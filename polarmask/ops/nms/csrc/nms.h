// Shared by the NMS kernels: input checks and the threshold comparison.
//
// With `categories` (one int64 per box), boxes of different categories never suppress each other:
// one call gives exactly the results of one NMS per category, with the same arithmetic on the
// same (unshifted) coordinates.
#pragma once

#include <ATen/core/Tensor.h>

#include <cmath>
#include <limits>
#include <optional>

namespace polarmask {

// The largest scalar_t not above `threshold`, so that for every scalar_t value x,
// `x > threshold_below<scalar_t>(threshold)` equals `double(x) > threshold`: the IoU test of
// torchvision's CPU kernel, done in the kernels' own precision.
template <typename scalar_t>
scalar_t threshold_below(double threshold) {
  constexpr scalar_t kMax = std::numeric_limits<scalar_t>::max();
  if (threshold > static_cast<double>(kMax)) {
    return kMax;
  }
  if (threshold < -static_cast<double>(kMax)) {
    return -std::numeric_limits<scalar_t>::infinity();
  }
  scalar_t below = static_cast<scalar_t>(threshold);
  if (static_cast<double>(below) > threshold) {
    below = std::nextafter(below, -std::numeric_limits<scalar_t>::infinity());
  }
  return below;
}

inline void check_nms_inputs(const at::Tensor& boxes, const at::Tensor& scores, int64_t offset,
                             const std::optional<at::Tensor>& categories) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4,
              "polarmask::nms: boxes must be (B, 4) x1y1x2y2, got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0),
              "polarmask::nms: scores must be (B,) with B = ", boxes.size(0), " boxes, got ",
              scores.sizes());
  TORCH_CHECK(boxes.device() == scores.device(), "polarmask::nms: boxes are on ", boxes.device(),
              " and scores on ", scores.device(), "; move both to one device");
  TORCH_CHECK(boxes.scalar_type() == at::kFloat || boxes.scalar_type() == at::kDouble,
              "polarmask::nms: boxes must be float32 or float64, got ", boxes.scalar_type(),
              " (polarmask.ops.nms casts half precision for you)");
  TORCH_CHECK(at::isFloatingType(scores.scalar_type()),
              "polarmask::nms: scores must be floating point, got ", scores.scalar_type());
  TORCH_CHECK(offset == 0 || offset == 1,
              "polarmask::nms: offset must be 0 (area (x2-x1)(y2-y1)) or 1 (area "
              "(x2-x1+1)(y2-y1+1)), got ",
              offset);
  if (categories.has_value()) {
    const at::Tensor& category = *categories;
    TORCH_CHECK(category.dim() == 1 && category.size(0) == boxes.size(0),
                "polarmask::nms: categories must be (B,) with B = ", boxes.size(0),
                " boxes, got ", category.sizes());
    TORCH_CHECK(category.scalar_type() == at::kLong,
                "polarmask::nms: categories must be int64, got ", category.scalar_type());
    TORCH_CHECK(category.device() == boxes.device(), "polarmask::nms: categories are on ",
                category.device(), " and boxes on ", boxes.device(), "; move both to one device");
  }
}

}  // namespace polarmask
