// Sampling one token per logits row: temperature, then top-k, then top-p (transformers' order),
// then a draw with a uniform number supplied by the caller (so a draw is reproducible and
// testable: the same u gives the same token).
//
// Truncation works on thresholds, not sorting: top-k keeps z >= the k-th largest z, top-p keeps
// z >= the largest threshold whose kept mass still reaches top_p of the top-k mass. Both are
// found bit by bit over the order-preserving integer image of the float (32 passes each), so
// tokens tied at a threshold are all kept. The draw walks the kept tokens in vocabulary order
// and takes the first whose cumulative mass exceeds u * (kept mass): the same distribution as
// the CPU reference's walk in probability order, a different token for the same u.
//
// Layout: logits [B, V] bf16; uniforms [B] fp32 in [0, 1); tokens [B] int; logp [B] fp32 =
// log softmax(logits / temperature)[token] over the full vocabulary (before truncation: what the
// trainer's forward pass recomputes). temperature <= 0 means greedy (lowest index on ties).
// Grid: B blocks, one row each; blockDim 1024 (a multiple of 32; the scan below assumes <= 1024).

__device__ __forceinline__ unsigned int order_key(float z) {
    unsigned int b = __float_as_uint(z);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ float kept_count_or_mass(const bf16* row, int V, float inv_temp, float lse,
                                    unsigned int floor_key, unsigned int key, bool mass,
                                    float* scratch) {
    float acc = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float z = to_f32(row[j]) * inv_temp;
        unsigned int kj = order_key(z);
        if (kj >= key && kj >= floor_key) acc += mass ? expf(z - lse) : 1.0f;
    }
    return block_sum(acc, scratch);
}

extern "C" __global__ void sample_rows(int* tokens, float* logp, const bf16* logits,
                                       const float* uniforms, int B, int V, float temperature,
                                       int top_k, float top_p) {
    __shared__ float scratch[32];
    __shared__ float chunk_prefix[1024];
    __shared__ int chosen;
    __shared__ int last_kept;
    int r = blockIdx.x;
    if (r >= B) return;
    const bf16* row = logits + (long)r * V;
    bool greedy = temperature <= 0.0f;
    float inv_temp = greedy ? 1.0f : 1.0f / temperature;

    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, to_f32(row[j]) * inv_temp);
    mx = block_max(mx, scratch);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) sum += expf(to_f32(row[j]) * inv_temp - mx);
    sum = block_sum(sum, scratch);
    float lse = mx + logf(sum);

    if (threadIdx.x == 0) { chosen = 0x7fffffff; last_kept = -1; }
    __syncthreads();

    if (greedy) {
        for (int j = threadIdx.x; j < V; j += blockDim.x)
            if (to_f32(row[j]) * inv_temp == mx) atomicMin(&chosen, j);
        __syncthreads();
    } else {
        unsigned int floor_key = 0;
        if (top_k > 0 && top_k < V) {
            unsigned int key = 0;
            for (int bit = 31; bit >= 0; bit--) {
                unsigned int cand = key | (1u << bit);
                if (kept_count_or_mass(row, V, inv_temp, lse, 0, cand, false, scratch) >= (float)top_k)
                    key = cand;
            }
            floor_key = key;
        }
        if (top_p < 1.0f) {
            float kept = kept_count_or_mass(row, V, inv_temp, lse, floor_key, 0, true, scratch);
            float need = top_p * kept;
            unsigned int key = 0;
            for (int bit = 31; bit >= 0; bit--) {
                unsigned int cand = key | (1u << bit);
                if (kept_count_or_mass(row, V, inv_temp, lse, floor_key, cand, true, scratch) >= need)
                    key = cand;
            }
            floor_key = max(floor_key, key);
        }
        // Each thread owns a contiguous chunk of the vocabulary for the ordered walk.
        int per = (V + blockDim.x - 1) / blockDim.x;
        int j0 = min(V, (int)threadIdx.x * per), j1 = min(V, j0 + per);
        float mine = 0.0f;
        int my_last = -1;
        for (int j = j0; j < j1; j++) {
            float z = to_f32(row[j]) * inv_temp;
            if (order_key(z) >= floor_key) { mine += expf(z - lse); my_last = j; }
        }
        chunk_prefix[threadIdx.x] = mine;
        if (my_last >= 0) atomicMax(&last_kept, my_last);
        __syncthreads();
        if (threadIdx.x == 0) {
            float acc = 0.0f;
            for (int t = 0; t < blockDim.x; t++) { float m = chunk_prefix[t]; chunk_prefix[t] = acc; acc += m; }
            scratch[0] = acc;
        }
        __syncthreads();
        float total = scratch[0];
        float target = uniforms[r] * total;
        float start = chunk_prefix[threadIdx.x];
        if (mine > 0.0f && start <= target && target < start + mine) {
            float acc = start;
            int found = -1;
            for (int j = j0; j < j1; j++) {
                float z = to_f32(row[j]) * inv_temp;
                if (order_key(z) < floor_key) continue;
                acc += expf(z - lse);
                if (acc > target) { found = j; break; }
            }
            // Summing one by one can land a hair under the chunk total: keep the chunk's last.
            atomicMin(&chosen, found >= 0 ? found : my_last);
        }
        __syncthreads();
        if (threadIdx.x == 0 && chosen == 0x7fffffff) chosen = last_kept;  // no chunk claimed the draw
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        int tok = chosen;
        tokens[r] = tok;
        logp[r] = to_f32(row[tok]) * inv_temp - lse;
    }
}
