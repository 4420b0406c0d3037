// Token log-probabilities and entropies from a chunk of lm-head logits, and their gradient.
//
// The lm head runs chunk by chunk over token rows: a GEMM writes the logits of R rows, these
// kernels reduce them, and the chunk's buffer is reused, so the full [tokens, vocab] logits
// never exist at once. With z = logits[r] * inv_temp and lse = log sum_j exp(z_j):
//   logp[r]    = z[targets[r]] - lse
//   entropy[r] = lse - sum_j softmax(z)_j z_j
// Layout: logits, dlogits [R, V] bf16; targets [R]; logp, entropy, lse, dlogp [R] fp32.

// Writes logp, entropy and lse (kept for the backward pass).
// Grid: R blocks, one row each; blockDim a multiple of 32.
extern "C" __global__ void logprob_forward(float* logp, float* entropy, float* lse_out,
                                           const bf16* logits, const int* targets, int R, int V,
                                           float inv_temp) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    if (r >= R) return;
    const bf16* row = logits + (long)r * V;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, to_f32(row[j]) * inv_temp);
    mx = block_max(mx, scratch);
    float sum = 0.0f, sum_ez = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float z = to_f32(row[j]) * inv_temp;
        float e = expf(z - mx);
        sum += e;
        sum_ez += e * (z - mx);
    }
    sum = block_sum(sum, scratch);
    sum_ez = block_sum(sum_ez, scratch);
    if (threadIdx.x == 0) {
        float lse = mx + logf(sum);
        lse_out[r] = lse;
        logp[r] = to_f32(row[targets[r]]) * inv_temp - lse;
        // sum_j p_j z_j = mx + sum_j p_j (z_j - mx); entropy = lse - that.
        entropy[r] = lse - (mx + sum_ez / sum);
    }
}

// Writes dlogits[r, j] = dlogp[r] * inv_temp * ([j == targets[r]] - softmax(z)_j), the gradient
// of sum_r dlogp[r] logp[r] (the entropy is reported, not differentiated). dlogits may alias
// logits: each element is read by the thread that writes it.
// Grid: R blocks, one row each.
extern "C" __global__ void logprob_backward(bf16* dlogits, const bf16* logits, const float* lse,
                                            const int* targets, const float* dlogp, int R, int V,
                                            float inv_temp) {
    int r = blockIdx.x;
    if (r >= R) return;
    float g = dlogp[r] * inv_temp, l = lse[r];
    int tgt = targets[r];
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        long k = (long)r * V + j;
        float p = expf(to_f32(logits[k]) * inv_temp - l);
        dlogits[k] = to_bf16(g * ((j == tgt ? 1.0f : 0.0f) - p));
    }
}
