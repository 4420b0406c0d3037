// Shared by every kernel file: the Rust side prepends this text to each source before NVRTC
// compiles it, so a file needs no #include of its own besides what it states here.
//
// Conventions every kernel follows:
//   * activations and weights are bf16 (`bf16` below), row-major, rows contiguous;
//   * arithmetic and reductions run in fp32; gradients of parameters, optimizer state,
//     log-probs and losses are fp32;
//   * a kernel that "writes" overwrites its output; one that "accumulates" adds (+=) into it.
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

#define WARP_SIZE 32
// NVRTC has no <math.h>; this is the IEEE positive infinity.
#define INFINITY __int_as_float(0x7f800000)

__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 to_bf16(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = WARP_SIZE / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP_SIZE / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum / max; every thread gets the result. `scratch` holds 32 floats of shared
// memory; blockDim.x must be a multiple of 32. Ends with a barrier so scratch can be reused.
__device__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    int nwarps = blockDim.x / WARP_SIZE;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : 0.0f;
    v = warp_sum(v);
    __syncthreads();
    return v;
}

__device__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    int nwarps = blockDim.x / WARP_SIZE;
    v = warp_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : -INFINITY;
    v = warp_max(v);
    __syncthreads();
    return v;
}
