// Residual stream and linear-layer helpers that the GEMMs do not fuse.

// Writes out = a + b (out may alias a). Layout: flat [n] bf16. Grid: one thread per element.
extern "C" __global__ void residual_add(bf16* out, const bf16* a, const bf16* b, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = to_bf16(to_f32(a[i]) + to_f32(b[i]));
}

// Writes x[r, :] += bias (the q/k/v projections' biases). Layout: x [n, c]; bias [c].
// Grid: one thread per element of x.
extern "C" __global__ void bias_add(bf16* x, const bf16* bias, int n, int c) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (long)n * c) x[i] = to_bf16(to_f32(x[i]) + to_f32(bias[i % c]));
}

// Accumulates dbias[j] += sum_r dout[r, j] in fp32, rows summed in order (deterministic).
// Layout: dout [n, c] bf16; dbias [c] fp32. Grid: one thread per column.
extern "C" __global__ void bias_backward(float* dbias, const bf16* dout, int n, int c) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    float acc = 0.0f;
    for (int r = 0; r < n; r++) acc += to_f32(dout[(long)r * c + j]);
    dbias[j] += acc;
}
