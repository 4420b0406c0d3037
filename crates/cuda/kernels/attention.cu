// Causal grouped-query attention with the probabilities materialised (the simple version that
// the flash-style kernels are later held to).
//
// Layout shared by every kernel here:
//   q, out, dq:   [B, Tq, nh, hd]   (the QKV GEMM's row-major output, one row per token)
//   k, v, dk, dv: [B, S, nkv, hd]   (S = capacity: the sequence length when training, the KV
//                                    cache's length when decoding)
//   att, ds:      [B, nh, Tq, S]    fp32; query t of batch row b sees keys u <= past[b] + t,
//                                    the rest of its row is written as 0
//   past:         [B]               keys already in the cache before the Tq new queries
//                                    (all 0 in training)
// Head h reads key/value head h / (nh / nkv). scale = 1 / sqrt(hd).

// Writes att = softmax_u(q[t] . k[u] * scale) over the visible keys.
// Grid: B * nh * Tq blocks, one query row each; blockDim a multiple of 32.
extern "C" __global__ void attention_softmax_forward(float* att, const bf16* q, const bf16* k,
                                                     const int* past, int B, int Tq, int S,
                                                     int nh, int nkv, int hd, float scale) {
    __shared__ float scratch[32];
    int row = blockIdx.x;  // (b, h, t)
    int t = row % Tq, h = (row / Tq) % nh, b = row / (Tq * nh);
    if (b >= B) return;
    int g = h / (nh / nkv);
    int last = past[b] + t;  // last visible key
    const bf16* qrow = q + (((long)b * Tq + t) * nh + h) * hd;
    float* arow = att + (long)row * S;
    float mx = -INFINITY;
    for (int u = threadIdx.x; u < S; u += blockDim.x) {
        float sc = -INFINITY;
        if (u <= last) {
            const bf16* krow = k + (((long)b * S + u) * nkv + g) * hd;
            float acc = 0.0f;
            for (int d = 0; d < hd; d++) acc += to_f32(qrow[d]) * to_f32(krow[d]);
            sc = acc * scale;
        }
        arow[u] = sc;
        mx = fmaxf(mx, sc);
    }
    mx = block_max(mx, scratch);
    float sum = 0.0f;
    for (int u = threadIdx.x; u < S; u += blockDim.x) {
        float e = u <= last ? expf(arow[u] - mx) : 0.0f;
        arow[u] = e;
        sum += e;
    }
    sum = block_sum(sum, scratch);
    float inv = 1.0f / sum;
    for (int u = threadIdx.x; u < S; u += blockDim.x) arow[u] *= inv;
}

// Writes out[b, t, h, :] = sum_u att[b, h, t, u] v[b, u, g, :].
// Grid: one thread per output element (B * Tq * nh * hd).
extern "C" __global__ void attention_values_forward(bf16* out, const float* att, const bf16* v,
                                                    const int* past, int B, int Tq, int S, int nh,
                                                    int nkv, int hd) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)B * Tq * nh * hd) return;
    int d = idx % hd, h = (idx / hd) % nh, t = (idx / ((long)hd * nh)) % Tq;
    int b = idx / ((long)hd * nh * Tq);
    int g = h / (nh / nkv);
    int last = past[b] + t;
    const float* arow = att + (((long)b * nh + h) * Tq + t) * S;
    float acc = 0.0f;
    for (int u = 0; u <= last; u++) acc += arow[u] * to_f32(v[(((long)b * S + u) * nkv + g) * hd + d]);
    out[idx] = to_bf16(acc);
}

// Backward kernels assume training: past = 0 and Tq = S = T.

// Writes ds = att * (dp - sum_u att * dp) * scale with dp[u] = dout[t] . v[u] (the gradient of
// the pre-softmax scores). ds is its own buffer: attention_backward_dkv reads both.
// Grid: B * nh * T blocks, one query row each; blockDim a multiple of 32.
extern "C" __global__ void attention_softmax_backward(float* ds, const float* att,
                                                      const bf16* dout, const bf16* v, int B,
                                                      int T, int nh, int nkv, int hd,
                                                      float scale) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    int t = row % T, h = (row / T) % nh, b = row / (T * nh);
    if (b >= B) return;
    int g = h / (nh / nkv);
    const bf16* go = dout + (((long)b * T + t) * nh + h) * hd;
    const float* arow = att + (long)row * T;
    float* drow = ds + (long)row * T;
    // Each thread keeps its own keys' dp in a second pass rather than in memory.
    float pdp = 0.0f;
    for (int u = threadIdx.x; u <= t; u += blockDim.x) {
        const bf16* vrow = v + (((long)b * T + u) * nkv + g) * hd;
        float dp = 0.0f;
        for (int d = 0; d < hd; d++) dp += to_f32(go[d]) * to_f32(vrow[d]);
        pdp += arow[u] * dp;
    }
    pdp = block_sum(pdp, scratch);
    for (int u = threadIdx.x; u < T; u += blockDim.x) {
        float out = 0.0f;
        if (u <= t) {
            const bf16* vrow = v + (((long)b * T + u) * nkv + g) * hd;
            float dp = 0.0f;
            for (int d = 0; d < hd; d++) dp += to_f32(go[d]) * to_f32(vrow[d]);
            out = arow[u] * (dp - pdp) * scale;
        }
        drow[u] = out;
    }
}

// Writes dq[b, t, h, :] = sum_{u <= t} ds[b, h, t, u] k[b, u, g, :].
// Grid: one thread per element of dq.
extern "C" __global__ void attention_backward_dq(bf16* dq, const float* ds, const bf16* k, int B,
                                                 int T, int nh, int nkv, int hd) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)B * T * nh * hd) return;
    int d = idx % hd, h = (idx / hd) % nh, t = (idx / ((long)hd * nh)) % T;
    int b = idx / ((long)hd * nh * T);
    int g = h / (nh / nkv);
    const float* drow = ds + (((long)b * nh + h) * T + t) * T;
    float acc = 0.0f;
    for (int u = 0; u <= t; u++) acc += drow[u] * to_f32(k[(((long)b * T + u) * nkv + g) * hd + d]);
    dq[idx] = to_bf16(acc);
}

// Writes dk[b, u, g, :] = sum_{h in group g} sum_{t >= u} ds[b, h, t, u] q[b, t, h, :] and
// dv[b, u, g, :] = sum_{h in group g} sum_{t >= u} att[b, h, t, u] dout[b, t, h, :].
// Grid: one thread per element of dk (B * T * nkv * hd).
extern "C" __global__ void attention_backward_dkv(bf16* dk, bf16* dv, const float* ds,
                                                  const float* att, const bf16* q,
                                                  const bf16* dout, int B, int T, int nh, int nkv,
                                                  int hd) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)B * T * nkv * hd) return;
    int d = idx % hd, g = (idx / hd) % nkv, u = (idx / ((long)hd * nkv)) % T;
    int b = idx / ((long)hd * nkv * T);
    int group = nh / nkv;
    float acck = 0.0f, accv = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++) {
        for (int t = u; t < T; t++) {
            long a = (((long)b * nh + h) * T + t) * T + u;
            long qi = (((long)b * T + t) * nh + h) * hd + d;
            acck += ds[a] * to_f32(q[qi]);
            accv += att[a] * to_f32(dout[qi]);
        }
    }
    dk[idx] = to_bf16(acck);
    dv[idx] = to_bf16(accv);
}
