// Precision casts and accumulation between bf16 activations and fp32 buffers.

// Writes out = bf16(inp) (round to nearest even). Layout: flat [n]. Grid: one thread per element.
extern "C" __global__ void cast_f32_to_bf16(bf16* out, const float* inp, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = to_bf16(inp[i]);
}

// Writes out = f32(inp). Layout: flat [n]. Grid: one thread per element.
extern "C" __global__ void cast_bf16_to_f32(float* out, const bf16* inp, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = to_f32(inp[i]);
}

// Accumulates acc += scale * f32(inp): folds a bf16 GEMM's gradient into the fp32 gradient
// buffer. Layout: flat [n]. Grid: one thread per element.
extern "C" __global__ void accumulate_bf16_into_f32(float* acc, const bf16* inp, float scale,
                                                    long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) acc[i] += scale * to_f32(inp[i]);
}
