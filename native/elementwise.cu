// The small per-token kernels of a layer: RMS norm, rotary embedding, gated activations (SwiGLU,
// GeGLU), residual add, bias, scaling, KV store, and the activation conversion that feeds cuBLAS.
// Launch shapes are set by CudaBackend.
#include "common.cuh"

// One block per row: out = in / rms(in) * weight. With a residual (not null), in += residual
// first, in place: the residual add fused with the norm that follows it (one pass over the row
// instead of two kernels). out may be in (the per-head q/k norms run in place).
extern "C" __global__ void pg_rms_norm(float* out, float* in, const float* __restrict__ residual,
                                       const float* __restrict__ weight, int width, float eps) {
    __shared__ float scratch[WARP_SIZE];
    float* x = in + static_cast<size_t>(blockIdx.x) * width;
    float* y = out + static_cast<size_t>(blockIdx.x) * width;
    const float* r = residual != nullptr ? residual + static_cast<size_t>(blockIdx.x) * width : nullptr;
    float sum = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        float v = x[i];
        if (r != nullptr) {
            v += r[i];
            x[i] = v; // read back below by this same thread
        }
        sum += v * v;
    }
    sum = block_sum(sum, scratch);
    const float scale = 1.0f / sqrtf(sum / width + eps); // correctly rounded, unlike rsqrtf
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        y[i] = x[i] * scale * weight[i];
    }
}

// cos_sin row r = cos(positions[r] * f[i]) for i < pairs, then the sines; computed in double like
// the CPU backend, since angles of late positions are large. Grid: (ceil(pairs / blockDim.x), tokens).
extern "C" __global__ void pg_rope_angles(float* __restrict__ cos_sin, const int* __restrict__ positions,
                                          const float* __restrict__ frequencies, int pairs) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int r = blockIdx.y;
    if (i < pairs) {
        double s, c;
        sincos(static_cast<double>(positions[r]) * static_cast<double>(frequencies[i]), &s, &c);
        float* row = cos_sin + static_cast<size_t>(r) * 2 * pairs;
        row[i] = static_cast<float>(c);
        row[pairs + i] = static_cast<float>(s);
    }
}

// One block per token row r: rotary embedding of the first 2 * pairs values of each head of q
// (q_heads heads) and k (k_heads heads), in place (ggml's "normal" adjacent pairs; pairs < half a
// head is a partial rotation); then, when key_cache is not null, row r of k (as rotated) and of v
// (k_heads * head_dim values each; halves with kv_half) into slot slots[r] of the paged caches. One kernel for a
// layer's rope of q and k and its KV store, or any one of them (q_heads 0, or pairs 0).
extern "C" __global__ void pg_rope_store_kv(float* q, float* k, const float* __restrict__ v,
                                            const float* __restrict__ cos_sin, void* __restrict__ key_cache,
                                            void* __restrict__ value_cache, const int* __restrict__ slots,
                                            int q_heads, int k_heads, int head_dim, int pairs, int kv_half) {
    const int r = blockIdx.x;
    const float* cs = cos_sin + static_cast<size_t>(r) * 2 * pairs;
    for (int j = threadIdx.x; j < (q_heads + k_heads) * pairs; j += blockDim.x) {
        const int h = j / pairs;
        const int i = j % pairs;
        float* p = h < q_heads ? q + (static_cast<size_t>(r) * q_heads + h) * head_dim + 2 * i
                               : k + (static_cast<size_t>(r) * k_heads + h - q_heads) * head_dim + 2 * i;
        const float c = cs[i];
        const float s = cs[pairs + i];
        const float x0 = p[0];
        const float x1 = p[1];
        p[0] = x0 * c - x1 * s;
        p[1] = x0 * s + x1 * c;
    }
    if (key_cache != nullptr) {
        __syncthreads(); // k's rotated values, written by other threads of the block
        const int width = k_heads * head_dim;
        const size_t src = static_cast<size_t>(r) * width;
        const size_t dst = static_cast<size_t>(slots[r]) * width;
        for (int i = threadIdx.x; i < width; i += blockDim.x) {
            store_kv(key_cache, dst + i, k[src + i], kv_half);
            store_kv(value_cache, dst + i, v[src + i], kv_half);
        }
    }
}

// The activations of pg_gated_activation (dev.peregrine.spi.Activation; CudaBackend maps them).
enum Activation : int { ACT_SILU = 0, ACT_GELU_TANH = 1 };
constexpr float GELU_SCALE = 1.5957691216057308f; // 2 sqrt(2 / pi)
constexpr float GELU_CUBIC = 0.044715f;

// gate[i] = act(gate[i]) * up[i], both activations as x * sigmoid(u): u = x for SiLU, and for
// tanh-GELU u = 2 sqrt(2/pi) (x + 0.044715 x^3), since 0.5 (1 + tanh(z)) = sigmoid(2z) (the CPU
// backend's form too). Far in the tails expf(-u) overflows to inf or underflows to 0 (as u itself
// does for huge |x|), which gives -0 or x, as it should: no NaN.
extern "C" __global__ void pg_gated_activation(float* __restrict__ gate, const float* __restrict__ up, long long n,
                                               int activation) {
    const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        const float g = gate[i];
        const float u = activation == ACT_GELU_TANH ? fmaf(g * g * g, GELU_CUBIC, g) * GELU_SCALE : g;
        gate[i] = g / (1.0f + expf(-u)) * up[i];
    }
}

// x[r][i] += bias[i] for rows of `width` values, one block per row.
extern "C" __global__ void pg_add_bias(float* __restrict__ x, const float* __restrict__ bias, int width) {
    float* row = x + static_cast<size_t>(blockIdx.x) * width;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        row[i] += bias[i];
    }
}

// x[i] *= factor
extern "C" __global__ void pg_scale(float* __restrict__ x, long long n, float factor) {
    const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        x[i] *= factor;
    }
}

// acc[i] += x[i]
// out = a + b; out may be a (the residual add) or a third array (the halves of a split GEMM).
extern "C" __global__ void pg_add(float* out, const float* a, const float* b, long long n) {
    const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        out[i] = a[i] + b[i];
    }
}


// Activations as the B operand of a half-precision cuBLAS GEMM.
template <class Out>
__device__ void convert(Out* __restrict__ out, const float* __restrict__ in, long long n) {
    const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        out[i] = from_float<Out>(in[i]);
    }
}

extern "C" __global__ void pg_to_f16(__half* out, const float* in, long long n) {
    convert(out, in, n);
}

// Activations as two bf16 halves, out[i] = bf16(x) and out[n + i] = bf16(x - out[i]): their sum
// keeps 16 bits of x's mantissa where one bf16 keeps 8, so that a GEMM over both halves (one pass
// over the weights, twice the columns) is as accurate as the f32 matrix-vector kernels.
extern "C" __global__ void pg_to_bf16_split(__nv_bfloat16* out, const float* in, long long n) {
    const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        const float x = in[i];
        const __nv_bfloat16 high = __float2bfloat16_rn(x);
        out[i] = high;
        out[n + i] = __float2bfloat16_rn(x - __bfloat162float(high));
    }
}
