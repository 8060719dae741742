// Torch bindings for wkv7_cuda.cu: shape/dtype checks and allocation; the maths is in the .cu file.
#include <torch/extension.h>

void wkv7_cuda_forward(int dtype, int B, int T, int H, const void* w, const void* q, const void* k, const void* v,
                       const void* a, const void* b, const float* s0, void* y, float* s, float* sa, float* sT);
void wkv7_cuda_backward(int dtype, int B, int T, int H, const void* w, const void* q, const void* k, const void* v,
                        const void* a, const void* b, const void* dy, const float* s, const float* sa,
                        const float* dsT, void* dw, void* dq, void* dk, void* dv, void* da, void* db, float* ds0);

namespace {
constexpr int64_t CHUNK = 16;

int dtype_code(const torch::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kFloat32,
              "wkv7 cuda: inputs must be bfloat16 or float32");
  return x.scalar_type() == torch::kBFloat16 ? 0 : 1;
}

std::vector<torch::Tensor> forward(torch::Tensor r, torch::Tensor w, torch::Tensor k, torch::Tensor v,
                                   torch::Tensor a, torch::Tensor b, torch::Tensor s0) {
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2), N = r.size(3);
  TORCH_CHECK(T % CHUNK == 0, "wkv7 cuda: T must be a multiple of 16 (the wrapper pads)");
  auto f32 = r.options().dtype(torch::kFloat32);
  auto y = torch::empty_like(r);
  auto s = torch::empty({B, H, T / CHUNK, N, N}, f32);
  auto sa = torch::empty({B, T, H, N}, f32);
  auto sT = torch::empty({B, H, N, N}, f32);
  wkv7_cuda_forward(dtype_code(r), B, T, H, w.data_ptr(), r.data_ptr(), k.data_ptr(), v.data_ptr(), a.data_ptr(),
                    b.data_ptr(), s0.data_ptr<float>(), y.data_ptr(), s.data_ptr<float>(), sa.data_ptr<float>(),
                    sT.data_ptr<float>());
  return {y, sT, s, sa};
}

std::vector<torch::Tensor> backward(torch::Tensor r, torch::Tensor w, torch::Tensor k, torch::Tensor v,
                                    torch::Tensor a, torch::Tensor b, torch::Tensor s, torch::Tensor sa,
                                    torch::Tensor dy, torch::Tensor dsT) {
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2);
  auto dr = torch::empty_like(r), dw = torch::empty_like(r), dk = torch::empty_like(r), dv = torch::empty_like(r),
       da = torch::empty_like(r), db = torch::empty_like(r);
  auto ds0 = torch::empty_like(dsT);
  wkv7_cuda_backward(dtype_code(r), B, T, H, w.data_ptr(), r.data_ptr(), k.data_ptr(), v.data_ptr(), a.data_ptr(),
                     b.data_ptr(), dy.data_ptr(), s.data_ptr<float>(), sa.data_ptr<float>(), dsT.data_ptr<float>(),
                     dw.data_ptr(), dr.data_ptr(), dk.data_ptr(), dv.data_ptr(), da.data_ptr(), db.data_ptr(),
                     ds0.data_ptr<float>());
  return {dr, dw, dk, dv, da, db, ds0};
}
}  // namespace

TORCH_LIBRARY(midi_rwkv_wkv7_cuda, m) {
  m.def("forward(Tensor r, Tensor w, Tensor k, Tensor v, Tensor a, Tensor b, Tensor s0) -> Tensor[]");
  m.def("backward(Tensor r, Tensor w, Tensor k, Tensor v, Tensor a, Tensor b, Tensor s, Tensor sa, Tensor dy, Tensor dsT) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(midi_rwkv_wkv7_cuda, CUDA, m) {
  m.impl("forward", &forward);
  m.impl("backward", &backward);
}
