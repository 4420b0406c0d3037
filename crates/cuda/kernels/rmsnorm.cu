// RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight, with its backward.

// Writes out [n, c] (bf16) and rstd [n] (fp32, kept for the backward pass).
// Layout: inp [n, c]; weight [c]. Grid: n blocks, one row each; blockDim a multiple of 32.
extern "C" __global__ void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp,
                                           const bf16* weight, int n, int c, float eps) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= n) return;
    const bf16* x = inp + (long)row * c;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < c; i += blockDim.x) {
        float v = to_f32(x[i]);
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    float r = rsqrtf(ss / c + eps);
    if (threadIdx.x == 0) rstd[row] = r;
    for (int i = threadIdx.x; i < c; i += blockDim.x)
        out[(long)row * c + i] = to_bf16(to_f32(x[i]) * r * to_f32(weight[i]));
}

// Accumulates dinp [n, c] (bf16, read-modify-write: the residual stream's gradient) and
// dweight [c] (fp32, atomically, once per block). With y_i = x_i r w_i:
//   dx_i = r g_i w_i - r^3 x_i mean_j(g_j w_j x_j),   dw_i = sum_rows g_i x_i r.
// Layout: dout, inp [n, c]; weight [c]; rstd [n]. Grid: any number of blocks, each walking rows
// blockIdx.x, blockIdx.x + gridDim.x, ...; dynamic shared memory: c floats (dweight partials).
extern "C" __global__ void rmsnorm_backward(bf16* dinp, float* dweight, const bf16* dout,
                                            const bf16* inp, const bf16* weight, const float* rstd,
                                            int n, int c) {
    __shared__ float scratch[32];
    extern __shared__ float dw_partial[];
    for (int i = threadIdx.x; i < c; i += blockDim.x) dw_partial[i] = 0.0f;
    __syncthreads();
    for (int row = blockIdx.x; row < n; row += gridDim.x) {
        const bf16* g = dout + (long)row * c;
        const bf16* x = inp + (long)row * c;
        float r = rstd[row];
        float gwx = 0.0f;
        for (int i = threadIdx.x; i < c; i += blockDim.x)
            gwx += to_f32(g[i]) * to_f32(weight[i]) * to_f32(x[i]);
        gwx = block_sum(gwx, scratch) / c;
        for (int i = threadIdx.x; i < c; i += blockDim.x) {
            float gi = to_f32(g[i]), xi = to_f32(x[i]);
            float d = r * gi * to_f32(weight[i]) - r * r * r * xi * gwx;
            long k = (long)row * c + i;
            dinp[k] = to_bf16(to_f32(dinp[k]) + d);
            dw_partial[i] += gi * xi * r;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < c; i += blockDim.x) atomicAdd(&dweight[i], dw_partial[i]);
}
