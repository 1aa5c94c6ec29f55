// Declares torch.ops.polarmask.nms; the CPU and CUDA kernels register their implementations.
#include <Python.h>
#include <torch/library.h>

// `import polarmask._C` loads this library, which runs the registrations below.
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(polarmask, m) {
  m.def(
      "nms(Tensor boxes, Tensor scores, float iou_threshold, int offset, Tensor? categories=None) "
      "-> Tensor");
}
