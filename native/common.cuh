// Helpers shared by every Peregrine kernel. Kernels are extern "C" so the Java side finds them by
// name; their parameter lists are checked against dev.peregrine.cuda.Kernel when modules load.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

constexpr int WARP_SIZE = 32;
constexpr unsigned FULL_MASK = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    }
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    }
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024). Every thread gets the sum.
// `scratch` needs 32 floats; the block must not use it again before the next __syncthreads().
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    v = warp_sum(v);
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    const int warps = blockDim.x / WARP_SIZE;
    v = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

// Max over the whole block, as block_sum.
__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    v = warp_max(v);
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    const int warps = blockDim.x / WARP_SIZE;
    v = lane < warps ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

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
