// Fused AdamW on fp32 master weights, torch.optim.AdamW's arithmetic:
//   p *= decay;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
// where the host computes, in f64 like the CPU reference, decay = 1 - lr * weight_decay,
// step_size = lr / (1 - b1^t) and bc2_sqrt = sqrt(1 - b2^t).
// with g = grad * clip[0] (the clip coefficient from grad_norm_finish, read on the device so the
// step needs no host round trip). Also writes the bf16 copy the forward pass reads.
//
// Layout: master, grad, m, v [n] fp32; weights [n] bf16 (may be null: no bf16 copy); clip [1].
// Biases and norm weights take no decay: the caller launches once per contiguous range with
// its own decay (1 for those). Grid: one thread per element.
extern "C" __global__ void adamw_step(float* master, bf16* weights, const float* grad, float* m,
                                      float* v, const float* clip, long n, float step_size,
                                      float decay, float beta1, float beta2, float eps,
                                      float bc2_sqrt) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grad[i] * clip[0];
    float p = master[i] * decay;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    p -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    m[i] = mi;
    v[i] = vi;
    master[i] = p;
    if (weights) weights[i] = to_bf16(p);
}
