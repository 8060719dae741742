// WKV7 on the CPU: forward and backward, one (batch, head) pair per task (at::parallel_for).
//
// Per step t, with state S (row i = value channel, column j = key channel), d = exp(-exp(w)):
//   sa_i = sum_j a_j S_ij;  S_ij = S_ij d_j + sa_i b_j + v_i k_j;  y_i = sum_j S_ij r_j
// The forward pass keeps the state at the start of every CHUNK steps; the backward pass
// recomputes each chunk's states from its checkpoint (no division by the decay) and walks back.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t CHUNK = 16;

struct Dims {
  int64_t B, T, H, N;
  int64_t chunks() const { return (T + CHUNK - 1) / CHUNK; }
  // offset of (b, t, h, 0) in a [B, T, H, N] tensor
  int64_t at(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * H + h) * N; }
};

// One step: updates S in place and writes sa (and y unless null). Pointers never alias.
inline void step(float* __restrict__ S, const float* __restrict__ r, const float* __restrict__ w,
                 const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ a,
                 const float* __restrict__ b, float* __restrict__ sa, float* __restrict__ y,
                 float* __restrict__ d, int64_t N) {
  for (int64_t j = 0; j < N; ++j) d[j] = std::exp(-std::exp(w[j]));
  for (int64_t i = 0; i < N; ++i) {
    const float* __restrict__ row = S + i * N;
    float acc = 0.f;
    for (int64_t j = 0; j < N; ++j) acc += row[j] * a[j];
    sa[i] = acc;
  }
  for (int64_t i = 0; i < N; ++i) {
    float* __restrict__ row = S + i * N;
    const float s_a = sa[i], v_i = v[i];
    float acc = 0.f;
    for (int64_t j = 0; j < N; ++j) {
      row[j] = row[j] * d[j] + s_a * b[j] + v_i * k[j];
      acc += row[j] * r[j];
    }
    if (y) y[i] = acc;
  }
}

// One step back: given G = dL/dS after the step, writes the step's input gradients and turns G
// into dL/dS before the step. S is the state after the step, Sp before; sa = Sp a.
inline void step_back(float* __restrict__ G, const float* __restrict__ S, const float* __restrict__ Sp,
                      const float* __restrict__ r, const float* __restrict__ w, const float* __restrict__ k,
                      const float* __restrict__ v, const float* __restrict__ a, const float* __restrict__ b,
                      const float* __restrict__ sa, const float* __restrict__ dy, float* __restrict__ acc,
                      int64_t N) {
  // acc holds 8 rows of N: d, dr, dk, db, dd (then dw), da, dsa, dv
  float* __restrict__ d = acc;
  float* __restrict__ dr = acc + N;
  float* __restrict__ dk = acc + 2 * N;
  float* __restrict__ db = acc + 3 * N;
  float* __restrict__ dd = acc + 4 * N;
  float* __restrict__ da = acc + 5 * N;
  float* __restrict__ dsa = acc + 6 * N;
  float* __restrict__ dv = acc + 7 * N;
  for (int64_t j = 0; j < N; ++j) {
    d[j] = std::exp(-std::exp(w[j]));
    dr[j] = dk[j] = db[j] = dd[j] = da[j] = 0.f;
  }
  for (int64_t i = 0; i < N; ++i) {
    float* __restrict__ g = G + i * N;
    const float* __restrict__ s = S + i * N;
    const float* __restrict__ sp = Sp + i * N;
    const float dyi = dy[i], vi = v[i], sai = sa[i];
    float dvi = 0.f, dsai = 0.f;
    for (int64_t j = 0; j < N; ++j) {
      const float gj = g[j] + dyi * r[j];  // y_i = sum_j S_ij r_j
      g[j] = gj;
      dr[j] += s[j] * dyi;
      dvi += gj * k[j];
      dk[j] += gj * vi;
      db[j] += gj * sai;
      dsai += gj * b[j];
      dd[j] += gj * sp[j];
    }
    dv[i] = dvi;
    dsa[i] = dsai;
  }
  for (int64_t i = 0; i < N; ++i) {  // da_j = sum_i Sp_ij dsa_i;  dL/dSp = G diag(d) + dsa a^T
    float* __restrict__ g = G + i * N;
    const float* __restrict__ sp = Sp + i * N;
    const float dsai = dsa[i];
    for (int64_t j = 0; j < N; ++j) {
      da[j] += sp[j] * dsai;
      g[j] = g[j] * d[j] + dsai * a[j];
    }
  }
  for (int64_t j = 0; j < N; ++j) dd[j] *= -d[j] * std::exp(w[j]);  // dd/dw = -d e^w: dd becomes dw
}

std::vector<torch::Tensor> forward(torch::Tensor r, torch::Tensor w, torch::Tensor k, torch::Tensor v,
                                   torch::Tensor a, torch::Tensor b, torch::Tensor s0, bool save) {
  const Dims D{r.size(0), r.size(1), r.size(2), r.size(3)};
  const int64_t N = D.N, NN = N * N;
  auto y = torch::empty_like(r);
  auto sT = s0.clone();
  auto ck = save ? torch::empty({D.B, D.H, D.chunks(), N, N}, r.options()) : torch::empty({0}, r.options());
  const float *pr = r.data_ptr<float>(), *pw = w.data_ptr<float>(), *pk = k.data_ptr<float>(),
              *pv = v.data_ptr<float>(), *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
  float *py = y.data_ptr<float>(), *ps = sT.data_ptr<float>(), *pck = save ? ck.data_ptr<float>() : nullptr;
  at::parallel_for(0, D.B * D.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> sa(N), d(N);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t bi = bh / D.H, h = bh % D.H;
      float* S = ps + bh * NN;
      for (int64_t t = 0; t < D.T; ++t) {
        if (save && t % CHUNK == 0) std::copy(S, S + NN, pck + (bh * D.chunks() + t / CHUNK) * NN);
        const int64_t o = D.at(bi, t, h);
        step(S, pr + o, pw + o, pk + o, pv + o, pa + o, pb + o, sa.data(), py + o, d.data(), N);
      }
    }
  });
  return {y, sT, ck};
}

std::vector<torch::Tensor> backward(torch::Tensor r, torch::Tensor w, torch::Tensor k, torch::Tensor v,
                                    torch::Tensor a, torch::Tensor b, torch::Tensor ck, torch::Tensor dy,
                                    torch::Tensor dsT) {
  const Dims D{r.size(0), r.size(1), r.size(2), r.size(3)};
  const int64_t N = D.N, NN = N * N;
  auto dr = torch::empty_like(r), dw = torch::empty_like(r), dk = torch::empty_like(r), dv = torch::empty_like(r),
       da = torch::empty_like(r), db = torch::empty_like(r);
  auto ds0 = dsT.clone();  // becomes dL/dS_0
  const float *pr = r.data_ptr<float>(), *pw = w.data_ptr<float>(), *pk = k.data_ptr<float>(),
              *pv = v.data_ptr<float>(), *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>(),
              *pck = ck.data_ptr<float>(), *pdy = dy.data_ptr<float>();
  float *pdr = dr.data_ptr<float>(), *pdw = dw.data_ptr<float>(), *pdk = dk.data_ptr<float>(),
        *pdv = dv.data_ptr<float>(), *pda = da.data_ptr<float>(), *pdb = db.data_ptr<float>(),
        *pG = ds0.data_ptr<float>();
  at::parallel_for(0, D.B * D.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> states((CHUNK + 1) * NN), sas(CHUNK * N), d(N), acc(8 * N);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t bi = bh / D.H, h = bh % D.H;
      float* G = pG + bh * NN;  // dL/dS after the current step
      for (int64_t c = D.chunks() - 1; c >= 0; --c) {
        const int64_t t0 = c * CHUNK, len = std::min(CHUNK, D.T - t0);
        // states[l] = S before step t0 + l; recompute the chunk from its checkpoint
        std::copy(pck + (bh * D.chunks() + c) * NN, pck + (bh * D.chunks() + c + 1) * NN, states.begin());
        for (int64_t l = 0; l < len; ++l) {
          float* S = states.data() + (l + 1) * NN;
          std::copy(states.data() + l * NN, states.data() + (l + 1) * NN, S);
          const int64_t o = D.at(bi, t0 + l, h);
          step(S, pr + o, pw + o, pk + o, pv + o, pa + o, pb + o, sas.data() + l * N, nullptr, d.data(), N);
        }
        for (int64_t l = len - 1; l >= 0; --l) {
          const int64_t o = D.at(bi, t0 + l, h);
          step_back(G, states.data() + (l + 1) * NN, states.data() + l * NN, pr + o, pw + o, pk + o, pv + o, pa + o,
                    pb + o, sas.data() + l * N, pdy + o, acc.data(), N);
          const float* out[] = {acc.data() + N, acc.data() + 4 * N, acc.data() + 2 * N, acc.data() + 7 * N,
                                acc.data() + 5 * N, acc.data() + 3 * N};  // dr, dw, dk, dv, da, db
          float* dst[] = {pdr + o, pdw + o, pdk + o, pdv + o, pda + o, pdb + o};
          for (int q = 0; q < 6; ++q) std::copy(out[q], out[q] + N, dst[q]);
        }
      }
    }
  });
  return {dr, dw, dk, dv, da, db, ds0};
}

}  // namespace

TORCH_LIBRARY(midi_rwkv_wkv7_cpu, m) {
  m.def("forward(Tensor r, Tensor w, Tensor k, Tensor v, Tensor a, Tensor b, Tensor s0, bool save) -> Tensor[]");
  m.def("backward(Tensor r, Tensor w, Tensor k, Tensor v, Tensor a, Tensor b, Tensor ck, Tensor dy, Tensor dsT) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(midi_rwkv_wkv7_cpu, CPU, m) {
  m.impl("forward", &forward);
  m.impl("backward", &backward);
}
