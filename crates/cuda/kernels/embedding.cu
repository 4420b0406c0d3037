// Token embedding lookup and its gradient.

// Writes out[t, :] = table[tokens[t], :].
// Layout: tokens [n]; table [vocab, c]; out [n, c]. Grid: n blocks; any block size.
extern "C" __global__ void embedding_forward(bf16* out, const int* tokens, const bf16* table,
                                             int n, int c) {
    int t = blockIdx.x;
    if (t >= n) return;
    const bf16* row = table + (long)tokens[t] * c;
    for (int i = threadIdx.x; i < c; i += blockDim.x) out[(long)t * c + i] = row[i];
}

// Accumulates dtable[tokens[t], :] += dout[t, :] in fp32.
// Layout: dout [n, c] bf16; dtable [vocab, c] fp32. Grid: n blocks. Repeated tokens meet in
// atomicAdd, so the order of their sum (not its value beyond rounding) varies between runs.
extern "C" __global__ void embedding_backward(float* dtable, const bf16* dout, const int* tokens,
                                              int n, int c) {
    int t = blockIdx.x;
    if (t >= n) return;
    float* row = dtable + (long)tokens[t] * c;
    for (int i = threadIdx.x; i < c; i += blockDim.x) atomicAdd(&row[i], to_f32(dout[(long)t * c + i]));
}
