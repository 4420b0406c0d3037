// Global gradient norm in two passes with a fixed reduction order (the same inputs give the same
// bits on every run), then torch's clip_grad_norm_ coefficient.

// Pass 1. Writes partial[blockIdx.x] = sum of g^2 over the elements this block strides over.
// Layout: g [n] fp32; partial [gridDim.x]. Grid: a fixed count (e.g. 2 x the SMs).
extern "C" __global__ void grad_norm_partial(float* partial, const float* g, long n) {
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        acc += g[i] * g[i];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Pass 2. Writes out[0] = sqrt(sum partial) and out[1] = min(1, max_norm / (norm + 1e-6))
// (1 when max_norm <= 0: no clipping). Grid: one block.
extern "C" __global__ void grad_norm_finish(float* out, const float* partial, int nparts,
                                            float max_norm) {
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) {
        float norm = sqrtf(acc);
        out[0] = norm;
        out[1] = max_norm > 0.0f ? fminf(1.0f, max_norm / (norm + 1e-6f)) : 1.0f;
    }
}
