// WKV7 on CUDA: forward and backward with an initial state, after RWKV-LM's "wind_backstepping".
//
// Per step, with state S (row i = value channel, column j = key channel), d = exp(-exp(w)):
//   sa_i = sum_j a_j S_ij;  S_ij = S_ij d_j + sa_i b_j + v_i k_j;  y_i = sum_j S_ij q_j
// Grid (H, B), _N_ threads: in the forward pass thread i owns row i of S; every _CHUNK_LEN_ steps
// the state is stored (transposed) for the backward pass, which walks back from those checkpoints,
// undoing each step by dividing by the decay (d >= exp(-exp(-0.5)) = 0.545 in the model).
// T must be a multiple of _CHUNK_LEN_ (the Python wrapper pads with identity steps).
// This file has no torch dependency so that it can be compiled with nvcc alone.
#include <cuda_bf16.h>

#ifndef _N_
#define _N_ 64
#endif
#ifndef _CHUNK_LEN_
#define _CHUNK_LEN_ 16
#endif

using bf = __nv_bfloat16;
__device__ inline float to_float(const bf& x) { return __bfloat162float(x); }
__device__ inline float to_float(const float& x) { return x; }
template <typename F> __device__ inline F from_float(float x);
template <> __device__ inline bf from_float<bf>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ inline float from_float<float>(float x) { return x; }

template <typename F>
__global__ void forward_kernel(int T, int H, const F* w_, const F* q_, const F* k_, const F* v_, const F* a_,
                               const F* b_, const float* s0_, F* y_, float* s_, float* sa_, float* sT_) {
  const int bb = blockIdx.y, hh = blockIdx.x, i = threadIdx.x;
  float state[_N_];
  const int state_base = ((bb * H + hh) * _N_ + i) * _N_;
#pragma unroll
  for (int j = 0; j < _N_; j++) state[j] = s0_[state_base + j];
  __shared__ float q[_N_], k[_N_], w[_N_], a[_N_], b[_N_];
  for (int t = 0; t < T; t++) {
    const int ind = ((bb * T + t) * H + hh) * _N_ + i;
    __syncthreads();
    q[i] = to_float(q_[ind]);
    w[i] = __expf(-__expf(to_float(w_[ind])));
    k[i] = to_float(k_[ind]);
    a[i] = to_float(a_[ind]);
    b[i] = to_float(b_[ind]);
    __syncthreads();
    float sa = 0;
#pragma unroll
    for (int j = 0; j < _N_; j++) sa += a[j] * state[j];
    sa_[ind] = sa;
    const float v = to_float(v_[ind]);
    float y = 0;
#pragma unroll
    for (int j = 0; j < _N_; j++) {
      float& s = state[j];
      s = s * w[j] + sa * b[j] + k[j] * v;
      y += s * q[j];
    }
    y_[ind] = from_float<F>(y);
    if ((t + 1) % _CHUNK_LEN_ == 0) {
      const int base = ((bb * H + hh) * (T / _CHUNK_LEN_) + t / _CHUNK_LEN_) * _N_ * _N_ + i;
#pragma unroll
      for (int j = 0; j < _N_; j++) s_[base + j * _N_] = state[j];  // element (j, i) holds S_ij
    }
  }
#pragma unroll
  for (int j = 0; j < _N_; j++) sT_[state_base + j] = state[j];
}

template <typename F>
__global__ void backward_kernel(int T, int H, const F* w_, const F* q_, const F* k_, const F* v_, const F* a_,
                                const F* b_, const F* dy_, const float* s_, const float* sa_, const float* dsT_,
                                F* dw_, F* dq_, F* dk_, F* dv_, F* da_, F* db_, float* ds0_) {
  const int bb = blockIdx.y, hh = blockIdx.x, i = threadIdx.x;
  float stateT[_N_] = {0}, dstate[_N_], dstateT[_N_];  // stateT[j] = S_ji; dstate[j] = dS_ij; dstateT[j] = dS_ji
  const int head = (bb * H + hh) * _N_ * _N_;
#pragma unroll
  for (int j = 0; j < _N_; j++) {
    dstate[j] = dsT_[head + i * _N_ + j];
    dstateT[j] = dsT_[head + j * _N_ + i];
  }
  __shared__ float w[_N_], q[_N_], k[_N_], v[_N_], a[_N_], b[_N_], dy[_N_], sa[_N_], dsa_shared[_N_];
  for (int t = T - 1; t >= 0; t--) {
    const int ind = ((bb * T + t) * H + hh) * _N_ + i;
    __syncthreads();
    const float qi = q[i] = to_float(q_[ind]);
    const float wi_factor = -__expf(to_float(w_[ind]));  // d(log d)/dw
    const float wi = w[i] = __expf(wi_factor);
    const float ki = k[i] = to_float(k_[ind]);
    const float ai = a[i] = to_float(a_[ind]);
    const float bi = b[i] = to_float(b_[ind]);
    v[i] = to_float(v_[ind]);
    const float dyi = dy[i] = to_float(dy_[ind]);
    sa[i] = sa_[ind];
    __syncthreads();
    if ((t + 1) % _CHUNK_LEN_ == 0) {
      const int base = ((bb * H + hh) * (T / _CHUNK_LEN_) + t / _CHUNK_LEN_) * _N_ * _N_ + i * _N_;
#pragma unroll
      for (int j = 0; j < _N_; j++) stateT[j] = s_[base + j];
    }
    float dq = 0;
#pragma unroll
    for (int j = 0; j < _N_; j++) dq += stateT[j] * dy[j];  // dq_i = sum_j S_ji dy_j
    dq_[ind] = from_float<F>(dq);
    const float inv_wi = 1.0f / wi;
#pragma unroll
    for (int j = 0; j < _N_; j++) {
      stateT[j] = (stateT[j] - ki * v[j] - bi * sa[j]) * inv_wi;  // undo the step: S before it
      dstate[j] += dyi * q[j];
      dstateT[j] += qi * dy[j];
    }
    float dw = 0, dk = 0, dv = 0, db = 0, dsa = 0;
#pragma unroll
    for (int j = 0; j < _N_; j++) {
      dw += dstateT[j] * stateT[j];
      dk += dstateT[j] * v[j];
      dv += dstate[j] * k[j];
      dsa += dstate[j] * b[j];
      db += dstateT[j] * sa[j];
    }
    dw_[ind] = from_float<F>(dw * wi * wi_factor);
    dk_[ind] = from_float<F>(dk);
    dv_[ind] = from_float<F>(dv);
    db_[ind] = from_float<F>(db);
    __syncthreads();
    dsa_shared[i] = dsa;
    __syncthreads();
    float da = 0;
#pragma unroll
    for (int j = 0; j < _N_; j++) da += stateT[j] * dsa_shared[j];  // da_i = sum_j S_ji dsa_j
    da_[ind] = from_float<F>(da);
#pragma unroll
    for (int j = 0; j < _N_; j++) {
      dstate[j] = dstate[j] * w[j] + dsa * a[j];
      dstateT[j] = dstateT[j] * wi + ai * dsa_shared[j];
    }
  }
#pragma unroll
  for (int j = 0; j < _N_; j++) ds0_[head + i * _N_ + j] = dstate[j];
}

// Host launchers with plain pointers (dtype chosen by the caller: 0 = bf16, 1 = fp32).
void wkv7_cuda_forward(int dtype, int B, int T, int H, const void* w, const void* q, const void* k, const void* v,
                       const void* a, const void* b, const float* s0, void* y, float* s, float* sa, float* sT) {
  const dim3 grid(H, B);
  if (dtype == 0)
    forward_kernel<bf><<<grid, _N_>>>(T, H, (const bf*)w, (const bf*)q, (const bf*)k, (const bf*)v, (const bf*)a,
                                      (const bf*)b, s0, (bf*)y, s, sa, sT);
  else
    forward_kernel<float><<<grid, _N_>>>(T, H, (const float*)w, (const float*)q, (const float*)k, (const float*)v,
                                         (const float*)a, (const float*)b, s0, (float*)y, s, sa, sT);
}

void wkv7_cuda_backward(int dtype, int B, int T, int H, const void* w, const void* q, const void* k, const void* v,
                        const void* a, const void* b, const void* dy, const float* s, const float* sa,
                        const float* dsT, void* dw, void* dq, void* dk, void* dv, void* da, void* db, float* ds0) {
  const dim3 grid(H, B);
  if (dtype == 0)
    backward_kernel<bf><<<grid, _N_>>>(T, H, (const bf*)w, (const bf*)q, (const bf*)k, (const bf*)v, (const bf*)a,
                                       (const bf*)b, (const bf*)dy, s, sa, dsT, (bf*)dw, (bf*)dq, (bf*)dk, (bf*)dv,
                                       (bf*)da, (bf*)db, ds0);
  else
    backward_kernel<float><<<grid, _N_>>>(T, H, (const float*)w, (const float*)q, (const float*)k, (const float*)v,
                                          (const float*)a, (const float*)b, (const float*)dy, s, sa, dsT, (float*)dw,
                                          (float*)dq, (float*)dk, (float*)dv, (float*)da, (float*)db, ds0);
}
