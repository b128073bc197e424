// Helpers shared by every Peregrine kernel. Kernels are extern "C" so the Java side finds them by
// name; their parameter lists are checked against dev.peregrine.cuda.Kernel when modules load.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

constexpr int WARP_SIZE = 32;
constexpr unsigned FULL_MASK = 0xffffffffu;

// The reductions below, as functors: one reduction written once, for sums and maxima.
struct SumOp {
    __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <class Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        v = op(v, __shfl_xor_sync(FULL_MASK, v, offset));
    }
    return v;
}

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, SumOp()); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, MaxOp()); }

// Reduction over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets
// the result. `scratch` needs 32 floats; the block must not use it again before the next
// __syncthreads(). `identity` fills the lanes past the block's warps.
template <class Op>
__device__ __forceinline__ float block_reduce(float v, float* scratch, float identity, Op op) {
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    v = warp_reduce(v, op);
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    const int warps = blockDim.x / WARP_SIZE;
    v = lane < warps ? scratch[lane] : identity;
    return warp_reduce(v, op);
}

__device__ __forceinline__ float block_sum(float v, float* scratch) { return block_reduce(v, scratch, 0.0f, SumOp()); }
__device__ __forceinline__ float block_max(float v, float* scratch) { return block_reduce(v, scratch, -INFINITY, MaxOp()); }

// Conversions from float to the element types the GEMM path feeds to cuBLAS.
template <class T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// A KV cache holds floats, or halves when kv_half is set (ModelOptions.kvCacheType F16: half the
// memory and bandwidth; values round to the nearest half, ties to even, as the CPU backend rounds).
__device__ __forceinline__ void store_kv(void* cache, size_t at, float v, int kv_half) {
    if (kv_half) {
        static_cast<__half*>(cache)[at] = __float2half_rn(v);
    } else {
        static_cast<float*>(cache)[at] = v;
    }
}
