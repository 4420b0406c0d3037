// KV cache append for batched decoding.

// Copies the new keys/values of each batch row into its cache at positions past[b] .. past[b]+Tn-1.
// Layout: kcache, vcache [B, S, nkv, hd]; k, v [B, Tn, nkv, hd]; past [B] (the row's cached
// length before this call; the caller keeps past[b] + Tn <= S).
// Grid: one thread per element of k (B * Tn * nkv * hd).
extern "C" __global__ void kv_cache_append(bf16* kcache, bf16* vcache, const bf16* k,
                                           const bf16* v, const int* past, int B, int Tn, int S,
                                           int nkv, int hd) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long row_elems = (long)nkv * hd;
    if (idx >= (long)B * Tn * row_elems) return;
    long e = idx % row_elems;
    int t = (idx / row_elems) % Tn;
    int b = idx / (row_elems * Tn);
    long dst = ((long)b * S + past[b] + t) * row_elems + e;
    kcache[dst] = k[idx];
    vcache[dst] = v[idx];
}
