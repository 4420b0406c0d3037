// Rotary position embedding in Hugging Face's rotate_half layout: within a head, dimension i
// pairs with i + hd/2 and turns by angle positions[t] * inv_freq[i].

__device__ void rope_rotate(bf16* x, const int* positions, const float* inv_freq, int n,
                            int heads, int hd, float sign) {
    int half = hd / 2;
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long total = (long)n * heads * half;
    if (idx >= total) return;
    int i = idx % half;
    long th = idx / half;  // (t, head)
    int t = th / heads;
    float angle = (float)positions[t] * inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    s *= sign;
    bf16* head = x + th * hd;
    float a = to_f32(head[i]), b = to_f32(head[i + half]);
    head[i] = to_bf16(a * c - b * s);
    head[i + half] = to_bf16(b * c + a * s);
}

// Rotates x in place. Layout: x [n, heads, hd]; positions [n] (absolute); inv_freq [hd/2].
// Grid: one thread per (t, head, i < hd/2).
extern "C" __global__ void rope_forward(bf16* x, const int* positions, const float* inv_freq,
                                        int n, int heads, int hd) {
    rope_rotate(x, positions, inv_freq, n, heads, hd, 1.0f);
}

// The rotation is orthogonal: its gradient is the inverse rotation of dx, in place.
// Same layout and grid as rope_forward.
extern "C" __global__ void rope_backward(bf16* dx, const int* positions, const float* inv_freq,
                                         int n, int heads, int hd) {
    rope_rotate(dx, positions, inv_freq, n, heads, hd, -1.0f);
}
