// Causal GQA attention without the [T, T] probabilities: one warp per query row walks the
// visible keys with an online softmax (running max m, running sum l, running output), keeping
// only the row's log-sum-exp for the backward pass, which recomputes each probability from it.
// Same layouts as attention.cu:
//   q, out, dq, dout: [B, Tq, nh, hd];  k, v, dk, dv: [B, S, nkv, hd];  past: [B]
//   lse, delta:       [B, nh, Tq] fp32
// hd <= 128 (each lane holds hd / 32 <= 4 dimensions of the row). Blocks hold whole warps; rows
// are numbered (b, h, t) with t fastest, so a block's warps share keys in cache.

#define MAX_DIMS_PER_LANE 4

// Writes out and lse. Grid: one warp per (b, h, t) row; blockDim a multiple of 32.
extern "C" __global__ void flash_attention_forward(bf16* out, float* lse, const bf16* q,
                                                   const bf16* k, const bf16* v,
                                                   const int* past, int B, int Tq, int S, int nh,
                                                   int nkv, int hd, float scale) {
    long row = ((long)blockIdx.x * blockDim.x + threadIdx.x) / WARP_SIZE;
    int lane = threadIdx.x % WARP_SIZE;
    if (row >= (long)B * nh * Tq) return;
    int t = row % Tq, h = (row / Tq) % nh, b = row / ((long)Tq * nh);
    int g = h / (nh / nkv);
    int last = past[b] + t;
    const bf16* qrow = q + (((long)b * Tq + t) * nh + h) * hd;
    float qv[MAX_DIMS_PER_LANE], acc[MAX_DIMS_PER_LANE];
#pragma unroll
    for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
        int d = lane + j * WARP_SIZE;
        qv[j] = d < hd ? to_f32(qrow[d]) : 0.0f;
        acc[j] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int u = 0; u <= last; u++) {
        const bf16* krow = k + (((long)b * S + u) * nkv + g) * hd;
        const bf16* vrow = v + (((long)b * S + u) * nkv + g) * hd;
        float part = 0.0f;
#pragma unroll
        for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
            int d = lane + j * WARP_SIZE;
            if (d < hd) part += qv[j] * to_f32(krow[d]);
        }
        float s = warp_sum(part) * scale;
        float m_new = fmaxf(m, s);
        float correction = expf(m - m_new);  // 0 on the first key (m = -inf)
        float p = expf(s - m_new);
        l = l * correction + p;
#pragma unroll
        for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
            int d = lane + j * WARP_SIZE;
            if (d < hd) acc[j] = acc[j] * correction + p * to_f32(vrow[d]);
        }
        m = m_new;
    }
    bf16* orow = out + (((long)b * Tq + t) * nh + h) * hd;
#pragma unroll
    for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
        int d = lane + j * WARP_SIZE;
        if (d < hd) orow[d] = to_bf16(acc[j] / l);
    }
    if (lane == 0) lse[row] = m + logf(l);
}

// Backward kernels assume training: past = 0 and Tq = S = T.

// Writes delta[b, h, t] = dout[b, t, h] . out[b, t, h] (the softmax backward's row term).
// Grid: one warp per (b, h, t) row.
extern "C" __global__ void flash_attention_backward_delta(float* delta, const bf16* dout,
                                                          const bf16* out, int B, int T, int nh,
                                                          int hd) {
    long row = ((long)blockIdx.x * blockDim.x + threadIdx.x) / WARP_SIZE;
    int lane = threadIdx.x % WARP_SIZE;
    if (row >= (long)B * nh * T) return;
    int t = row % T, h = (row / T) % nh, b = row / ((long)T * nh);
    long base = (((long)b * T + t) * nh + h) * hd;
    float part = 0.0f;
    for (int d = lane; d < hd; d += WARP_SIZE) part += to_f32(dout[base + d]) * to_f32(out[base + d]);
    part = warp_sum(part);
    if (lane == 0) delta[row] = part;
}

// Writes dq[b, t, h] = sum_{u <= t} p (dp - delta) scale k[b, u, g], with p = exp(s - lse) and
// dp = dout[b, t, h] . v[b, u, g]. Grid: one warp per (b, h, t) row.
extern "C" __global__ void flash_attention_backward_dq(bf16* dq, const bf16* q, const bf16* k,
                                                       const bf16* v, const bf16* dout,
                                                       const float* lse, const float* delta,
                                                       int B, int T, int nh, int nkv, int hd,
                                                       float scale) {
    long row = ((long)blockIdx.x * blockDim.x + threadIdx.x) / WARP_SIZE;
    int lane = threadIdx.x % WARP_SIZE;
    if (row >= (long)B * nh * T) return;
    int t = row % T, h = (row / T) % nh, b = row / ((long)T * nh);
    int g = h / (nh / nkv);
    long base = (((long)b * T + t) * nh + h) * hd;
    float qv[MAX_DIMS_PER_LANE], gv[MAX_DIMS_PER_LANE], acc[MAX_DIMS_PER_LANE];
#pragma unroll
    for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
        int d = lane + j * WARP_SIZE;
        qv[j] = d < hd ? to_f32(q[base + d]) : 0.0f;
        gv[j] = d < hd ? to_f32(dout[base + d]) : 0.0f;
        acc[j] = 0.0f;
    }
    float L = lse[row], D = delta[row];
    for (int u = 0; u <= t; u++) {
        const bf16* krow = k + (((long)b * T + u) * nkv + g) * hd;
        const bf16* vrow = v + (((long)b * T + u) * nkv + g) * hd;
        float ps = 0.0f, pd = 0.0f;
#pragma unroll
        for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
            int d = lane + j * WARP_SIZE;
            if (d < hd) {
                ps += qv[j] * to_f32(krow[d]);
                pd += gv[j] * to_f32(vrow[d]);
            }
        }
        float s = warp_sum(ps) * scale, dp = warp_sum(pd);
        float ds = expf(s - L) * (dp - D) * scale;
#pragma unroll
        for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
            int d = lane + j * WARP_SIZE;
            if (d < hd) acc[j] += ds * to_f32(krow[d]);
        }
    }
#pragma unroll
    for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
        int d = lane + j * WARP_SIZE;
        if (d < hd) dq[base + d] = to_bf16(acc[j]);
    }
}

// Writes dk[b, u, g] = sum_{h in g} sum_{t >= u} ds q[b, t, h] and
// dv[b, u, g] = sum_{h in g} sum_{t >= u} p dout[b, t, h], recomputing p and ds as in _dq.
// Grid: one warp per (b, g, u) key row (rows numbered with u fastest).
extern "C" __global__ void flash_attention_backward_dkv(bf16* dk, bf16* dv, const bf16* q,
                                                        const bf16* k, const bf16* v,
                                                        const bf16* dout, const float* lse,
                                                        const float* delta, int B, int T, int nh,
                                                        int nkv, int hd, float scale) {
    long row = ((long)blockIdx.x * blockDim.x + threadIdx.x) / WARP_SIZE;
    int lane = threadIdx.x % WARP_SIZE;
    if (row >= (long)B * nkv * T) return;
    int u = row % T, g = (row / T) % nkv, b = row / ((long)T * nkv);
    int group = nh / nkv;
    long kbase = (((long)b * T + u) * nkv + g) * hd;
    float kv_[MAX_DIMS_PER_LANE], vv[MAX_DIMS_PER_LANE], ak[MAX_DIMS_PER_LANE], av[MAX_DIMS_PER_LANE];
#pragma unroll
    for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
        int d = lane + j * WARP_SIZE;
        kv_[j] = d < hd ? to_f32(k[kbase + d]) : 0.0f;
        vv[j] = d < hd ? to_f32(v[kbase + d]) : 0.0f;
        ak[j] = 0.0f;
        av[j] = 0.0f;
    }
    for (int h = g * group; h < (g + 1) * group; h++) {
        for (int t = u; t < T; t++) {
            long qbase = (((long)b * T + t) * nh + h) * hd;
            long r = ((long)b * nh + h) * T + t;
            float ps = 0.0f, pd = 0.0f;
#pragma unroll
            for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
                int d = lane + j * WARP_SIZE;
                if (d < hd) {
                    ps += to_f32(q[qbase + d]) * kv_[j];
                    pd += to_f32(dout[qbase + d]) * vv[j];
                }
            }
            float s = warp_sum(ps) * scale, dp = warp_sum(pd);
            float p = expf(s - lse[r]);
            float ds = p * (dp - delta[r]) * scale;
#pragma unroll
            for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
                int d = lane + j * WARP_SIZE;
                if (d < hd) {
                    ak[j] += ds * to_f32(q[qbase + d]);
                    av[j] += p * to_f32(dout[qbase + d]);
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < MAX_DIMS_PER_LANE; j++) {
        int d = lane + j * WARP_SIZE;
        if (d < hd) {
            dk[kbase + d] = to_bf16(ak[j]);
            dv[kbase + d] = to_bf16(av[j]);
        }
    }
}
