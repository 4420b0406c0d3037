// A CPU stand-in for the CUDA runtime features our kernels use, so kernels/*.cu can run on a
// machine without a GPU (emulate.py builds them with g++ against this). One block runs at a time
// with one std::thread per CUDA thread; __syncthreads is a block barrier, warp shuffles go
// through a per-warp exchange with barriers, __shared__ becomes static (safe because blocks run
// one after another), atomics take a lock. It checks indexing, reductions and algorithms, not
// timing, the memory model or warp-divergence rules: the GPU checks (gpu-check.sh) still decide.
#include <cstdint>
#include <cmath>
#include <cstring>
#include <thread>
#include <barrier>
#include <atomic>
#include <vector>
#include <functional>
#include <mutex>
#include <algorithm>
#undef INFINITY
struct dim3s { unsigned x = 1, y = 1, z = 1; };
thread_local dim3s threadIdx, blockIdx;
dim3s blockDim, gridDim;
std::barrier<>* g_bar = nullptr;
std::vector<std::barrier<>*> g_warp_bar;
float g_xch[32][32];
unsigned char g_dyn_smem[1 << 16];
std::mutex g_atomic;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
inline void __syncthreads() { g_bar->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_xch[w][l] = v;
    g_warp_bar[w]->arrive_and_wait();
    float r = g_xch[w][l ^ o];
    g_warp_bar[w]->arrive_and_wait();
    return r;
}
struct __nv_bfloat16 { uint16_t x; };
inline float __bfloat162float(__nv_bfloat16 b) { uint32_t u = (uint32_t)b.x << 16; float f; memcpy(&f, &u, 4); return f; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if (std::isnan(f)) return {0x7fc0};
    u += 0x7fff + ((u >> 16) & 1);
    return {(uint16_t)(u >> 16)};
}
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline void sincosf(float a, float* s, float* c) { *s = std::sin(a); *c = std::cos(a); }
inline float atomicAdd(float* p, float v) { std::lock_guard<std::mutex> g(g_atomic); float o = *p; *p += v; return o; }
inline int atomicMin(int* p, int v) { std::lock_guard<std::mutex> g(g_atomic); int o = *p; *p = std::min(o, v); return o; }
inline int atomicMax(int* p, int v) { std::lock_guard<std::mutex> g(g_atomic); int o = *p; *p = std::max(o, v); return o; }
using std::min; using std::max;
inline void emu_run(unsigned grid, unsigned block, const std::function<void()>& body) {
    gridDim.x = grid; blockDim.x = block;
    std::barrier<> bar(block); g_bar = &bar;
    std::vector<std::barrier<>*> wb;
    for (unsigned w = 0; w < (block + 31) / 32; w++) wb.push_back(new std::barrier<>(std::min(32u, block - w * 32)));
    g_warp_bar = wb;
    for (unsigned b = 0; b < grid; b++) {
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < block; t++) ts.emplace_back([=, &body] { blockIdx.x = b; threadIdx.x = t; body(); });
        for (auto& t : ts) t.join();
    }
    for (auto* p : wb) delete p;
}
