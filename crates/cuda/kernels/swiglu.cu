// SwiGLU: out = silu(gate) * up, silu(g) = g * sigmoid(g).

// Writes out [n]. Layout: gate, up, out are flat arrays of n elements ([tokens, intermediate]).
// Grid: one thread per element.
extern "C" __global__ void swiglu_forward(bf16* out, const bf16* gate, const bf16* up, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = to_f32(gate[i]);
    float s = 1.0f / (1.0f + expf(-g));
    out[i] = to_bf16(g * s * to_f32(up[i]));
}

// Writes dgate and dup (they are fresh GEMM inputs, so nothing to accumulate into).
// dup = dout * silu(g); dgate = dout * up * s * (1 + g (1 - s)). Same layout and grid.
extern "C" __global__ void swiglu_backward(bf16* dgate, bf16* dup, const bf16* dout,
                                           const bf16* gate, const bf16* up, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = to_f32(gate[i]), d = to_f32(dout[i]);
    float s = 1.0f / (1.0f + expf(-g));
    dup[i] = to_bf16(d * g * s);
    dgate[i] = to_bf16(d * to_f32(up[i]) * (s + g * s * (1.0f - s)));
}
