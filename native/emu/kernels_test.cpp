// The kernels of native/*.cu, run by the emulator (emu.h) and compared with plain float64
// references written independently here. Launch shapes and parameters are the ones
// dev.peregrine.cuda.CudaBackend uses. Run by run.sh; prints one line per check, exits 1 on failure.
#include "emu.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

extern "C" {
void pg_rms_norm(float*, float*, const float*, const float*, int, float);
void pg_rope_angles(float*, const int*, const float*, int);
void pg_rope_store_kv(float*, float*, const float*, const float*, void*, void*, const int*, int, int, int, int, int);
void pg_gated_activation(float*, const float*, long long, int);
void pg_add_bias(float*, const float*, int);
void pg_scale(float*, long long, float);
void pg_add(float*, const float*, const float*, long long);
void pg_to_f16(__half*, const float*, long long);
void pg_to_bf16_split(__nv_bfloat16*, const float*, long long);
void pg_split_blocks(const uint8_t*, uint8_t*, __half*, long long, int);
void pg_embed_f32(float*, const int*, const uint8_t*, const __half*, int, int);
void pg_embed_f16(float*, const int*, const uint8_t*, const __half*, int, int);
void pg_embed_bf16(float*, const int*, const uint8_t*, const __half*, int, int);
void pg_embed_q8_0(float*, const int*, const uint8_t*, const __half*, int, int);
void pg_embed_q4_0(float*, const int*, const uint8_t*, const __half*, int, int);
void pg_dequant_f16_q8_0(__half*, const uint8_t*, const __half*, int, int);
void pg_dequant_f16_q4_0(__half*, const uint8_t*, const __half*, int, int);
#define MATVEC_PARAMS float*, float*, float*, const float*, const uint8_t*, const uint8_t*, const uint8_t*, \
    const __half*, const __half*, const __half*, int, int, int, int, int, int, int
void pg_matvec_f32(MATVEC_PARAMS);
void pg_matvec_f16(MATVEC_PARAMS);
void pg_matvec_bf16(MATVEC_PARAMS);
void pg_matvec_q8_0(MATVEC_PARAMS);
void pg_matvec_q4_0(MATVEC_PARAMS);
void pg_matvec_batch_f32(MATVEC_PARAMS);
void pg_matvec_batch_f16(MATVEC_PARAMS);
void pg_matvec_batch_bf16(MATVEC_PARAMS);
void pg_matvec_batch_q8_0(MATVEC_PARAMS);
void pg_matvec_batch_q4_0(MATVEC_PARAMS);
void pg_attention(float*, float*, const float*, const void*, const void*, const int*, const int*, const int*,
                  const int4*, int, int, int, int, float, int, float, int, int, int);
void pg_attention_combine(float*, const float*, int, int);
void pg_argmax(float*, int*, const float*, int, int);
void pg_top_k(float*, int*, const float*, int, int, int);
}

namespace {
int failures = 0;
std::mt19937 rng(42);

std::vector<float> randoms(size_t n) {
    std::normal_distribution<float> normal;
    std::vector<float> v(n);
    for (float& x : v) {
        x = normal(rng);
    }
    return v;
}

void report(const std::string& what, double worst, double allowed) {
    bool ok = worst <= allowed;
    std::printf("%s %-60s worst %.3g (allowed %.3g)\n", ok ? "ok  " : "FAIL", what.c_str(), worst, allowed);
    failures += ok ? 0 : 1;
}

emu::Index grid(unsigned x, unsigned y = 1, unsigned z = 1) { return emu::Index{x, y, z}; }

// ---- weights: ggml encodings, an independent decoder, and the device layout ----

enum Type { F32, F16, BF16, Q8_0, Q4_0 };
const char* NAMES[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
bool quantised(Type t) { return t == Q8_0 || t == Q4_0; }

uint16_t half_bits(float f) { return __half_as_ushort(__float2half_rn(f)); }
float half_value(uint16_t u) { return __half2float(__ushort_as_half(u)); }

// ggml's bytes for `rows` rows of `columns` values.
std::vector<uint8_t> encode(Type t, const std::vector<float>& x) {
    std::vector<uint8_t> out;
    auto put16 = [&](uint16_t u) { out.push_back(u & 0xff); out.push_back(u >> 8); };
    for (size_t i = 0; i < x.size();) {
        switch (t) {
            case F32: { uint8_t b[4]; std::memcpy(b, &x[i], 4); out.insert(out.end(), b, b + 4); i++; break; }
            case F16: put16(half_bits(x[i++])); break;
            case BF16: put16(__bfloat16_as_ushort(__float2bfloat16_rn(x[i++]))); break;
            case Q8_0: {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[i + j]));
                float d = amax / 127;
                put16(half_bits(d));
                for (int j = 0; j < 32; j++) out.push_back(static_cast<uint8_t>(static_cast<int8_t>(d == 0 ? 0 : std::lround(x[i + j] / d))));
                i += 32;
                break;
            }
            case Q4_0: {
                float max = 0;
                for (int j = 0; j < 32; j++) if (std::fabs(x[i + j]) > std::fabs(max)) max = x[i + j];
                float d = max / -8;
                float id = d == 0 ? 0 : 1 / d;
                put16(half_bits(d));
                for (int j = 0; j < 16; j++) {
                    int lo = std::min(15, static_cast<int>(x[i + j] * id + 8.5f));
                    int hi = std::min(15, static_cast<int>(x[i + j + 16] * id + 8.5f));
                    out.push_back(static_cast<uint8_t>(lo | (hi << 4)));
                }
                i += 32;
                break;
            }
        }
    }
    return out;
}

// Value `index` of ggml bytes, decoded the obvious way.
double decode(Type t, const std::vector<uint8_t>& bytes, size_t index) {
    auto get16 = [&](size_t at) { return static_cast<uint16_t>(bytes[at] | (bytes[at + 1] << 8)); };
    switch (t) {
        case F32: { float f; std::memcpy(&f, &bytes[index * 4], 4); return f; }
        case F16: return half_value(get16(index * 2));
        case BF16: { uint32_t u = static_cast<uint32_t>(get16(index * 2)) << 16; float f; std::memcpy(&f, &u, 4); return f; }
        case Q8_0: { size_t b = index / 32 * 34; return half_value(get16(b)) * static_cast<int8_t>(bytes[b + 2 + index % 32]); }
        case Q4_0: {
            size_t b = index / 32 * 18;
            int j = index % 32;
            int nibble = j < 16 ? bytes[b + 2 + j] & 15 : bytes[b + 2 + j - 16] >> 4;
            return half_value(get16(b)) * (nibble - 8);
        }
    }
    return 0;
}

size_t type_bytes(Type t, size_t values) {
    switch (t) {
        case F32: return values * 4;
        case F16: case BF16: return values * 2;
        case Q8_0: return values / 32 * 34;
        case Q4_0: return values / 32 * 18;
    }
    return 0;
}

// A matrix laid out as CudaBackend uploads it (native/weights.cuh).
struct DeviceWeight {
    std::vector<uint8_t> data;
    std::vector<__half> scales;
    int row_stride;
};

DeviceWeight upload(Type t, const std::vector<uint8_t>& bytes, int rows, int columns) {
    DeviceWeight w;
    if (!quantised(t)) {
        size_t row_bytes = type_bytes(t, columns);
        w.row_stride = static_cast<int>((row_bytes + 15) / 16 * 16);
        w.data.assign(static_cast<size_t>(rows) * w.row_stride + 16, 0);
        for (int r = 0; r < rows; r++) std::memcpy(&w.data[r * w.row_stride], &bytes[r * row_bytes], row_bytes);
        return w;
    }
    int block_bytes = t == Q8_0 ? 34 : 18;
    long long blocks = static_cast<long long>(rows) * columns / 32;
    w.row_stride = columns / 32 * (block_bytes - 2);
    w.data.assign(blocks * (block_bytes - 2) + 16, 0);
    w.scales.resize(blocks);
    emu::launch(grid(3), 64, [&] { pg_split_blocks(bytes.data(), w.data.data(), w.scales.data(), blocks, block_bytes); });
    return w;
}

using Matvec = void (*)(MATVEC_PARAMS);
using Embed = void (*)(float*, const int*, const uint8_t*, const __half*, int, int);
const Matvec MATVEC[] = {pg_matvec_f32, pg_matvec_f16, pg_matvec_bf16, pg_matvec_q8_0, pg_matvec_q4_0};
const Matvec MATVEC_BATCH[] = {pg_matvec_batch_f32, pg_matvec_batch_f16, pg_matvec_batch_bf16, pg_matvec_batch_q8_0,
                               pg_matvec_batch_q4_0};
// Weight rows per warp of the matvec kernels for a token count (as CudaBackend launches them).
int matvec_rows_per_warp(int tokens) { return tokens <= 1 ? 1 : tokens <= 2 ? 2 : 4; }
const Embed EMBED[] = {pg_embed_f32, pg_embed_f16, pg_embed_bf16, pg_embed_q8_0, pg_embed_q4_0};

void test_weights() {
    for (Type t : {F32, F16, BF16, Q8_0, Q4_0}) {
        std::vector<std::pair<int, int>> shapes = quantised(t)
                ? std::vector<std::pair<int, int>>{{32, 19}, {256, 70}, {1024, 9}}
                : std::vector<std::pair<int, int>>{{37, 19}, {172, 70}, {256, 33}, {1024, 9}};
        for (auto [columns, rows] : shapes) {
            std::vector<uint8_t> bytes = encode(t, randoms(static_cast<size_t>(rows) * columns));
            DeviceWeight w = upload(t, bytes, rows, columns);
            // Two more matrices of the same width for launches of three products (q/k/v, gate/up).
            const int rows_b = 5, rows_c = rows / 2 + 1;
            std::vector<uint8_t> bytes_b = encode(t, randoms(static_cast<size_t>(rows_b) * columns));
            std::vector<uint8_t> bytes_c = encode(t, randoms(static_cast<size_t>(rows_c) * columns));
            DeviceWeight w_b = upload(t, bytes_b, rows_b, columns), w_c = upload(t, bytes_c, rows_c, columns);
            for (int tokens : {1, 2, 3, 4, 5, 8}) {
                std::vector<float> x = randoms(static_cast<size_t>(tokens) * columns);
                // Worst relative error of out (tokens x n) against the float64 product with matrix `m`.
                auto check = [&](const std::vector<uint8_t>& m, int n, const std::vector<float>& out) {
                    double worst = 0;
                    for (int k = 0; k < tokens; k++) {
                        for (int r = 0; r < n; r++) {
                            double dot = 0, magnitude = 0;
                            for (int i = 0; i < columns; i++) {
                                double p = decode(t, m, static_cast<size_t>(r) * columns + i) * x[k * columns + i];
                                dot += p;
                                magnitude += std::fabs(p);
                            }
                            double e = std::fabs(out[k * n + r] - dot) / (magnitude + 1e-6);
                            worst = std::isnan(e) ? INFINITY : std::max(worst, e);
                        }
                    }
                    return worst;
                };
                for (int products : {1, 3}) {
                    for (int warps_per_row : {1, 2, 8}) {
                        int rb = products == 3 ? rows_b : 0, rc = products == 3 ? rows_c : 0;
                        std::vector<float> out(static_cast<size_t>(tokens) * rows, NAN), out_b(static_cast<size_t>(tokens) * rows_b, NAN),
                                out_c(static_cast<size_t>(tokens) * rows_c, NAN);
                        int per_warp = matvec_rows_per_warp(tokens);
                        int groups = (rows + per_warp - 1) / per_warp + (rb + per_warp - 1) / per_warp + (rc + per_warp - 1) / per_warp;
                        int groups_per_block = 8 / warps_per_row;
                        Matvec kernel = tokens == 1 ? MATVEC[t] : MATVEC_BATCH[t];
                        emu::launch(grid((groups + groups_per_block - 1) / groups_per_block), 256, [&] {
                            kernel(out.data(), products == 3 ? out_b.data() : nullptr, products == 3 ? out_c.data() : nullptr, x.data(),
                                   w.data.data(), w_b.data.data(), w_c.data.data(), w.scales.data(), w_b.scales.data(),
                                   w_c.scales.data(), w.row_stride, columns, rows, rb, rc, tokens, warps_per_row);
                        });
                        double worst = check(bytes, rows, out);
                        if (products == 3) {
                            worst = std::max({worst, check(bytes_b, rows_b, out_b), check(bytes_c, rows_c, out_c)});
                        }
                        report(std::string("matvec ") + NAMES[t] + " " + std::to_string(columns) + "x" + std::to_string(rows)
                                   + (products == 3 ? " +" + std::to_string(rows_b) + " +" + std::to_string(rows_c) : std::string())
                                   + ", " + std::to_string(tokens) + " tokens, " + std::to_string(warps_per_row) + " warps/row",
                               worst, 1e-5);
                    }
                }
            }
            std::vector<int> tokens = {3 % rows, 0, rows - 1, 3 % rows};
            std::vector<float> embedded(tokens.size() * columns, NAN);
            emu::launch(grid(tokens.size()), 128, [&] {
                EMBED[t](embedded.data(), tokens.data(), w.data.data(), w.scales.data(), w.row_stride, columns);
            });
            double worst = 0;
            for (size_t k = 0; k < tokens.size(); k++) {
                for (int i = 0; i < columns; i++) {
                    double e = std::fabs(embedded[k * columns + i] - decode(t, bytes, static_cast<size_t>(tokens[k]) * columns + i));
                    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
                }
            }
            report(std::string("embed ") + NAMES[t] + " " + std::to_string(columns) + " columns", worst, 0);
            if (quantised(t)) {
                std::vector<__half> dense(static_cast<size_t>(rows) * columns);
                emu::launch(grid(rows), 256, [&] {
                    (t == Q8_0 ? pg_dequant_f16_q8_0 : pg_dequant_f16_q4_0)(dense.data(), w.data.data(), w.scales.data(), w.row_stride, columns);
                });
                worst = 0;
                for (size_t i = 0; i < dense.size(); i++) {
                    worst = std::max(worst, static_cast<double>(std::fabs(__half2float(dense[i]) - __half2float(__float2half_rn(static_cast<float>(decode(t, bytes, i)))))));
                }
                report(std::string("dequantise to f16 ") + NAMES[t] + " " + std::to_string(columns) + " columns", worst, 0);
            }
        }
    }
}

// ---- per-token kernels ----

void test_elementwise() {
    for (int width : {64, 576, 5000}) {
        int rows = 3;
        std::vector<float> x = randoms(rows * width), w = randoms(width), out(rows * width);
        std::vector<float> residual = randoms(rows * width), summed = x, fused_out(rows * width);
        emu::launch(grid(rows), 256, [&] { pg_rms_norm(out.data(), x.data(), nullptr, w.data(), width, 1e-5f); });
        emu::launch(grid(rows), 256, [&] { pg_rms_norm(fused_out.data(), summed.data(), residual.data(), w.data(), width, 1e-5f); });
        double worst = 0, worst_fused = 0, worst_sum = 0;
        for (int r = 0; r < rows; r++) {
            double ss = 0, ss_fused = 0;
            for (int i = 0; i < width; i++) {
                double v = x[r * width + i], f = static_cast<double>(x[r * width + i]) + residual[r * width + i];
                ss += v * v;
                ss_fused += f * f;
                worst_sum = std::max(worst_sum, std::fabs(summed[r * width + i] - f));
            }
            double scale = 1 / std::sqrt(ss / width + 1e-5), scale_fused = 1 / std::sqrt(ss_fused / width + 1e-5);
            for (int i = 0; i < width; i++) {
                double want = x[r * width + i] * scale * w[i];
                worst = std::max(worst, std::fabs(out[r * width + i] - want) / std::max(1.0, std::fabs(want)));
                double want_fused = (static_cast<double>(x[r * width + i]) + residual[r * width + i]) * scale_fused * w[i];
                worst_fused = std::max(worst_fused, std::fabs(fused_out[r * width + i] - want_fused) / std::max(1.0, std::fabs(want_fused)));
            }
        }
        report("rms_norm width " + std::to_string(width), worst, 1e-5);
        report("rms_norm with the residual added first, width " + std::to_string(width), worst_fused, 1e-5);
        report("  the residual stream after it", worst_sum, 1e-6);
    }

    int rows = 5, heads = 3, head_dim = 16, pairs = 6; // partial rotation: 12 of 16 dims
    std::vector<int> positions = {0, 1, 17, 999, 123456};
    std::vector<float> frequencies(pairs);
    for (int i = 0; i < pairs; i++) frequencies[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / (2 * pairs)));
    std::vector<float> cos_sin(rows * 2 * pairs);
    emu::launch(grid(1, rows), 64, [&] { pg_rope_angles(cos_sin.data(), positions.data(), frequencies.data(), pairs); });
    std::vector<float> x = randoms(rows * heads * head_dim), rotated = x;
    emu::launch(grid(rows), 32, [&] {
        pg_rope_store_kv(rotated.data(), nullptr, nullptr, cos_sin.data(), nullptr, nullptr, nullptr, heads, 0, head_dim, pairs, 0);
    });
    double worst_angle = 0, worst = 0;
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < pairs; i++) {
            double a = static_cast<double>(positions[r]) * frequencies[i];
            worst_angle = std::max({worst_angle, std::fabs(cos_sin[r * 2 * pairs + i] - std::cos(a)),
                                    std::fabs(cos_sin[r * 2 * pairs + pairs + i] - std::sin(a))});
        }
        for (int h = 0; h < heads; h++) {
            const float* in = &x[(r * heads + h) * head_dim];
            const float* got = &rotated[(r * heads + h) * head_dim];
            for (int d = 0; d < head_dim; d++) {
                double want = in[d];
                if (d < 2 * pairs) {
                    double a = static_cast<double>(positions[r]) * frequencies[d / 2];
                    want = d % 2 == 0 ? in[d] * std::cos(a) - in[d + 1] * std::sin(a) : in[d - 1] * std::sin(a) + in[d] * std::cos(a);
                }
                worst = std::max(worst, std::fabs(got[d] - want));
            }
        }
    }
    report("rope_angles", worst_angle, 1e-7);
    report("rope (partial rotation)", worst, 1e-5);
    {
        // Rope of q and k and the KV store in one launch: the same q as above, k as rope alone gives
        // it, stored with v in the rows' slots.
        const int kv_heads = 2, width = kv_heads * head_dim;
        std::vector<float> q = x, k = randoms(rows * width), v = randoms(rows * width), k_alone = k;
        std::vector<float> keys(50 * width, NAN), values(50 * width, NAN);
        std::vector<int> row_slots = {7, 0, 33, 49, 12};
        emu::launch(grid(rows), 64, [&] {
            pg_rope_store_kv(q.data(), k.data(), v.data(), cos_sin.data(), keys.data(), values.data(), row_slots.data(), heads,
                             kv_heads, head_dim, pairs, 0);
        });
        emu::launch(grid(rows), 32, [&] {
            pg_rope_store_kv(nullptr, k_alone.data(), nullptr, cos_sin.data(), nullptr, nullptr, nullptr, 0, kv_heads, head_dim, pairs, 0);
        });
        double worst_fused = 0;
        for (size_t i = 0; i < q.size(); i++) worst_fused = std::max(worst_fused, static_cast<double>(std::fabs(q[i] - rotated[i])));
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < width; i++) {
                worst_fused = std::max({worst_fused, static_cast<double>(std::fabs(k[r * width + i] - k_alone[r * width + i])),
                                        static_cast<double>(std::fabs(keys[row_slots[r] * width + i] - k_alone[r * width + i])),
                                        static_cast<double>(std::fabs(values[row_slots[r] * width + i] - v[r * width + i]))});
            }
        }
        report("rope of q and k with the KV store in one launch", worst_fused, 0);

        // The same into a half-precision cache: each stored value is the rotated k (or v) rounded
        // to the nearest half, ties to even; values past the half range become infinities.
        std::vector<float> q_half = x, k_half = randoms(rows * width), v_half = randoms(rows * width);
        k_half[3] = 70000.0f;     // rounds to +infinity
        v_half[5] = -1e-8f;       // a subnormal half's neighbourhood: rounds to -0
        std::vector<float> k_half_alone = k_half;
        std::vector<__half> half_keys(50 * width), half_values(50 * width);
        emu::launch(grid(rows), 64, [&] {
            pg_rope_store_kv(q_half.data(), k_half.data(), v_half.data(), cos_sin.data(), half_keys.data(), half_values.data(),
                             row_slots.data(), heads, kv_heads, head_dim, pairs, 1);
        });
        emu::launch(grid(rows), 32, [&] {
            pg_rope_store_kv(nullptr, k_half_alone.data(), nullptr, cos_sin.data(), nullptr, nullptr, nullptr, 0, kv_heads, head_dim,
                             pairs, 0);
        });
        int wrong_halves = 0;
        auto bits = [](__half h) { uint16_t b; std::memcpy(&b, &h, 2); return b; };
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < width; i++) {
                wrong_halves += bits(half_keys[row_slots[r] * width + i]) != bits(__float2half_rn(k_half_alone[r * width + i]));
                wrong_halves += bits(half_values[row_slots[r] * width + i]) != bits(__float2half_rn(v_half[r * width + i]));
            }
        }
        report("rope and KV store into halves: values off the nearest half", wrong_halves, 0);
    }

    long long n = 10007;
    std::vector<float> gate = randoms(n), up = randoms(n);
    for (long long i = 0; i < n; i += 97) gate[i] *= 30; // far into both tails, where exp overflows
    const float tails[] = {30, -30, 88, -88, 1e4f, -1e4f, 1e13f, -1e13f}; // the last: x^3 overflows in float
    for (int i = 0; i < 8; i++) gate[n - 1 - i] = tails[i];
    // SiLU is x sigmoid(x); tanh-GELU as PyTorch writes it (ACT_* in elementwise.cu).
    for (int activation : {0, 1}) {
        std::vector<float> g = gate;
        emu::launch(grid(4), 256, [&] { pg_gated_activation(g.data(), up.data(), n, activation); });
        double worst = 0;
        for (long long i = 0; i < n; i++) {
            double x = gate[i];
            double a = activation == 0 ? x / (1 + std::exp(-x)) : 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
            double e = std::fabs(g[i] - a * up[i]) / std::max(1.0, std::fabs(a * up[i]));
            worst = std::isnan(e) ? INFINITY : std::max(worst, e);
        }
        report(activation == 0 ? "gated activation silu" : "gated activation gelu_tanh", worst, 1e-6);
    }
    std::vector<float> addend = randoms(n), acc = addend;
    std::vector<float> sum(n, NAN);
    emu::launch(grid(4), 256, [&] { pg_add(acc.data(), acc.data(), up.data(), n); });
    emu::launch(grid(4), 256, [&] { pg_add(sum.data(), addend.data(), up.data(), n); });
    double worst_add = 0;
    for (long long i = 0; i < n; i++) {
        double expected = static_cast<double>(addend[i]) + up[i];
        worst_add = std::max({worst_add, std::fabs(acc[i] - expected), std::fabs(sum[i] - expected)});
    }
    report("add, in place and into a third array", worst_add, 1e-6);

    for (int width : {40, 3000}) {
        int bias_rows = 5;
        std::vector<float> x = randoms(bias_rows * width), bias = randoms(width), biased = x;
        emu::launch(grid(bias_rows), std::min(256, (width + 31) / 32 * 32), [&] { pg_add_bias(biased.data(), bias.data(), width); });
        double worst_bias = 0;
        for (int r = 0; r < bias_rows; r++) {
            for (int i = 0; i < width; i++) {
                double want = static_cast<double>(x[r * width + i]) + bias[i];
                worst_bias = std::max(worst_bias, std::fabs(biased[r * width + i] - want) / std::max(1.0, std::fabs(want)));
            }
        }
        report("add_bias width " + std::to_string(width), worst_bias, 1e-6);
    }
    for (float factor : {45.254833995939045f, -0.37f}) { // Gemma's sqrt(2048), and a negative factor
        std::vector<float> scaled = up;
        emu::launch(grid(4), 256, [&] { pg_scale(scaled.data(), n, factor); });
        double worst_scale = 0;
        for (long long i = 0; i < n; i++) {
            double want = static_cast<double>(up[i]) * factor;
            worst_scale = std::max(worst_scale, std::fabs(scaled[i] - want) / std::max(1.0, std::fabs(want)));
        }
        report("scale by " + std::to_string(factor), worst_scale, 1e-6);
    }

    int width = 40;
    std::vector<int> slots = {7, 0, 33};
    std::vector<float> k = randoms(3 * width), v = randoms(3 * width), keys(40 * width, 0), values(40 * width, 0);
    emu::launch(grid(3), 64, [&] {
        pg_rope_store_kv(nullptr, k.data(), v.data(), nullptr, keys.data(), values.data(), slots.data(), 0, 1, width, 0, 0);
    });
    double worst_store = 0;
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < width; i++) {
            worst_store = std::max({worst_store, static_cast<double>(std::fabs(keys[slots[r] * width + i] - k[r * width + i])),
                                    static_cast<double>(std::fabs(values[slots[r] * width + i] - v[r * width + i]))});
        }
    }
    report("store_kv", worst_store, 0);

    std::vector<__half> h(n);
    std::vector<__nv_bfloat16> b(2 * n);
    emu::launch(grid(4), 256, [&] { pg_to_f16(h.data(), addend.data(), n); });
    emu::launch(grid(4), 256, [&] { pg_to_bf16_split(b.data(), addend.data(), n); });
    double worst_half = 0, worst_split = 0;
    for (long long i = 0; i < n; i++) {
        worst_half = std::max({worst_half, static_cast<double>(std::fabs(__half2float(h[i]) - __half2float(__float2half_rn(addend[i])))),
                               static_cast<double>(std::fabs(__bfloat162float(b[i]) - __bfloat162float(__float2bfloat16_rn(addend[i]))))});
        double split = static_cast<double>(__bfloat162float(b[i])) + __bfloat162float(b[n + i]);
        worst_split = std::max(worst_split, std::fabs(split - addend[i]) / std::fabs(addend[i]));
    }
    report("to_f16, to_bf16_split high half", worst_half, 0);
    report("to_bf16_split: high + low within 2^-16 of x", worst_split, 1.0 / 65536);
}

// ---- attention, launched as CudaBackend.attention does ----

// A row at position P attends to P - window + 1..P (0..P without a window); soft-capped scores
// become softcap * tanh(score / softcap).
// With kv_half the caches hold halves, and the reference reads the same rounded values.
void test_attention(int heads, int kv_heads, int head_dim, const std::vector<std::pair<int, int>>& sequences, int splits,
                    int window = 0, float softcap = 0, bool kv_half = false) {
    const int block_size = 16, vectors = 16;
    int longest = 0;
    for (auto [first, count] : sequences) longest = std::max(longest, first + count);
    int blocks_per_sequence = (longest + block_size - 1) / block_size;
    int blocks = blocks_per_sequence * static_cast<int>(sequences.size());
    std::vector<int> order(blocks);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int> positions, sequence_of, starts;
    for (size_t s = 0; s < sequences.size(); s++) {
        starts.push_back(static_cast<int>(s) * blocks_per_sequence);
        for (int p = sequences[s].first; p < sequences[s].first + sequences[s].second; p++) {
            positions.push_back(p);
            sequence_of.push_back(static_cast<int>(s));
        }
    }
    int n = static_cast<int>(positions.size());
    int kv_width = kv_heads * head_dim;
    std::vector<float> q = randoms(static_cast<size_t>(n) * heads * head_dim);
    std::vector<float> keys = randoms(static_cast<size_t>(blocks) * block_size * kv_width);
    std::vector<float> values = randoms(keys.size());
    float scale = 1 / std::sqrt(static_cast<float>(head_dim));
    // Positions before every window of a sequence must not even be read (a cache may drop them):
    // NaN there would spread through the zero weights of masked positions.
    for (size_t s = 0; window > 0 && s < sequences.size(); s++) {
        for (int p = 0; p < sequences[s].first - window + 1; p++) {
            size_t slot = static_cast<size_t>(order[starts[s] + p / block_size]) * block_size + p % block_size;
            std::fill_n(&keys[slot * kv_width], kv_width, NAN);
            std::fill_n(&values[slot * kv_width], kv_width, NAN);
        }
    }

    std::vector<__half> half_keys(keys.size()), half_values(values.size());
    if (kv_half) {
        for (size_t i = 0; i < keys.size(); i++) {
            half_keys[i] = __float2half_rn(keys[i]);
            half_values[i] = __float2half_rn(values[i]);
            keys[i] = __half2float(half_keys[i]);
            values[i] = __half2float(half_values[i]);
        }
    }
    const void* key_cache = kv_half ? static_cast<const void*>(half_keys.data()) : keys.data();
    const void* value_cache = kv_half ? static_cast<const void*>(half_values.data()) : values.data();

    int group = heads / kv_heads;
    int heads_per_tile = std::min(group, vectors);
    int head_chunks = (group + heads_per_tile - 1) / heads_per_tile;
    int rows_per_tile = vectors / heads_per_tile;
    std::vector<int4> tiles; // StepLayout.buildTiles
    for (int r = 0; r < n;) {
        int first = r;
        do r++; while (r < n && r - first < rows_per_tile && sequence_of[r] == sequence_of[first]);
        tiles.push_back(int4{first, r - first, sequence_of[first], 0});
    }
    std::vector<float> out(q.size(), NAN), partials(static_cast<size_t>(n) * heads * splits * (head_dim + 2), NAN);
    emu::launch(grid(static_cast<unsigned>(tiles.size()), kv_heads * head_chunks, splits), 128, [&] {
        pg_attention(out.data(), partials.data(), q.data(), key_cache, value_cache, positions.data(), order.data(),
                     starts.data(), tiles.data(), block_size, heads, kv_heads, head_dim, scale, window, softcap, heads_per_tile,
                     splits, kv_half ? 1 : 0);
    });
    if (splits > 1) {
        emu::launch(grid(n * heads), 128, [&] { pg_attention_combine(out.data(), partials.data(), head_dim, splits); });
    }
    double worst = 0;
    for (int r = 0; r < n; r++) {
        for (int h = 0; h < heads; h++) {
            int kh = h / group;
            int first = window > 0 ? std::max(0, positions[r] - window + 1) : 0;
            std::vector<double> w(positions[r] + 1, -INFINITY);
            double max = -INFINITY, sum = 0;
            for (int p = first; p <= positions[r]; p++) {
                int slot = order[starts[sequence_of[r]] + p / block_size] * block_size + p % block_size;
                double dot = 0;
                for (int d = 0; d < head_dim; d++) dot += static_cast<double>(q[(r * heads + h) * head_dim + d]) * keys[slot * kv_width + kh * head_dim + d];
                w[p] = softcap > 0 ? softcap * std::tanh(dot * scale / softcap) : dot * scale;
                max = std::max(max, w[p]);
            }
            for (double& x : w) sum += (x = std::exp(x - max));
            for (int d = 0; d < head_dim; d++) {
                double o = 0;
                for (int p = first; p <= positions[r]; p++) {
                    int slot = order[starts[sequence_of[r]] + p / block_size] * block_size + p % block_size;
                    o += w[p] / sum * values[slot * kv_width + kh * head_dim + d];
                }
                double e = std::fabs(out[(r * heads + h) * head_dim + d] - o);
                worst = std::isnan(e) ? INFINITY : std::max(worst, e);
            }
        }
    }
    std::string cases;
    for (auto [first, count] : sequences) cases += " " + std::to_string(first) + "+" + std::to_string(count);
    report("attention " + std::to_string(heads) + "/" + std::to_string(kv_heads) + "/" + std::to_string(head_dim) + cases
           + ", " + std::to_string(splits) + " split(s)" + (window > 0 ? ", window " + std::to_string(window) : "")
           + (softcap > 0 ? ", softcap " + std::to_string(softcap).substr(0, 4) : "") + (kv_half ? ", half cache" : ""),
           worst, 1e-5);
}

// ---- sampling ----

void test_sampling() {
    // Rows of `stride` floats of which the first `vocab` compete; the padding holds larger values,
    // which must never be chosen.
    int vocab = 5003, stride = 5008, rows = 4;
    std::vector<float> logits = randoms(static_cast<size_t>(rows) * stride);
    for (int r = 0; r < rows; r++) {
        for (int i = vocab; i < stride; i++) logits[static_cast<size_t>(r) * stride + i] = 100;
    }
    logits[stride + 10] = logits[stride + 20] = 9; // a tie for the maximum
    for (int j = 0; j < 60; j++) logits[2 * stride + 100 + 7 * j] = 2.5f; // many equal values around the cut
    // Row 3: NaN counts as -infinity (ties with it by index), -0 equals +0 (and both rank above the
    // other, negative, values), a NaN larger than any key.
    float* special = &logits[3 * static_cast<size_t>(stride)];
    for (int i = 0; i < vocab; i++) special[i] = -1 - std::fabs(special[i]);
    for (int j = 0; j < 1200; j++) special[j * 4] = j % 3 == 0 ? NAN : j % 3 == 1 ? -INFINITY : (j % 2 ? -0.0f : 0.0f);
    special[7] = -NAN;
    auto rank_value = [](float x) { return std::isnan(x) ? -INFINITY : x; };
    std::vector<float> best_values(rows);
    std::vector<int> best(rows);
    emu::launch(grid(rows), 1024, [&] { pg_argmax(best_values.data(), best.data(), logits.data(), stride, vocab); });
    for (int k : {1, 40, 1024}) {
        std::vector<float> values(static_cast<size_t>(rows) * k);
        std::vector<int> indices(values.size());
        emu::launch(grid(rows), 1024, [&] { pg_top_k(values.data(), indices.data(), logits.data(), stride, vocab, k); });
        double wrong = 0;
        for (int r = 0; r < rows; r++) {
            std::vector<int> ranked(vocab);
            std::iota(ranked.begin(), ranked.end(), 0);
            const float* x = &logits[static_cast<size_t>(r) * stride];
            std::stable_sort(ranked.begin(), ranked.end(), [&](int a, int b) { return rank_value(x[a]) > rank_value(x[b]); });
            wrong += best[r] != ranked[0] || best_values[r] != rank_value(x[ranked[0]]);
            for (int j = 0; j < k; j++) {
                wrong += indices[r * k + j] != ranked[j] || values[r * k + j] != rank_value(x[ranked[j]]);
            }
        }
        report("argmax and top_k, k = " + std::to_string(k), wrong, 0);
    }
    // A row with nothing but NaN and -infinity: index 0, as the host's argmax.
    std::vector<float> hopeless(1030);
    for (size_t i = 0; i < hopeless.size(); i++) hopeless[i] = i % 2 ? -INFINITY : NAN;
    emu::launch(grid(1), 1024, [&] { pg_argmax(best_values.data(), best.data(), hopeless.data(), 1030, 1030); });
    report("argmax of a row of NaN and -infinity", best[0] != 0 || best_values[0] != -INFINITY, 0);
}
} // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    std::string only = argc > 1 ? argv[1] : "";
    if (only.empty() || only == "weights") test_weights();
    if (only.empty() || only == "elementwise") test_elementwise();
    if (only.empty() || only == "attention") {
        std::vector<std::vector<std::pair<int, int>>> cases = {
                {{0, 1}, {37, 1}, {90, 1}},             // batched decode
                {{0, 45}},                              // one prompt
                {{100, 1}, {50, 20}, {5, 1}, {0, 3}}};  // decodes, a prompt continuation, a short prompt
        int shapes[][3] = {{8, 4, 8}, {32, 8, 64}, {9, 3, 64}, {4, 4, 128}, {16, 1, 256}, {6, 2, 40}, {40, 2, 64}};
        for (auto& s : shapes) {
            for (auto& c : cases) test_attention(s[0], s[1], s[2], c, 1);
        }
        test_attention(8, 4, 8, {{300, 1}}, 4);          // a long decode split over positions
        test_attention(32, 8, 64, {{200, 1}, {7, 1}}, 3); // splits, one of them empty for the short row
        test_attention(6, 2, 40, {{60, 20}}, 2);          // a prompt chunk split
        test_attention(8, 4, 8, {{128, 1}}, 8);          // a power-of-two split count: 8 splits of 32, the last 3 empty
        test_attention(32, 8, 64, {{40, 1}, {3, 1}}, 64); // far more splits than positions
        // Sliding windows of one position, shorter than a tile of rows (each row of a prompt tile
        // starts elsewhere, and whole ranges of positions are skipped), equal to the history of
        // the row at 37 (and of 38-token prompts), longer than every history; soft-capped scores
        // alone and with a window. Tile forms: 8 rows x 2 heads, 16 rows x 1 head, 5 rows x 3
        // heads, and a group of 20 heads in two chunks of one row.
        int variants[][2] = {{1, 0}, {6, 0}, {38, 0}, {200, 0}, {0, 2}, {20, 3}};
        int windowed_shapes[][3] = {{8, 4, 8}, {4, 4, 128}, {6, 2, 40}, {40, 2, 64}};
        for (auto& s : windowed_shapes) {
            for (auto& c : cases) {
                for (auto& v : variants) test_attention(s[0], s[1], s[2], c, 1, v[0], static_cast<float>(v[1]));
            }
        }
        // Splits divide only the attended range: [201, 300] for a window of 100; a window of one
        // position, which leaves three splits empty; windows equal to and longer than the history.
        for (int window : {100, 1, 301, 1000}) test_attention(8, 4, 8, {{300, 1}}, 4, window);
        test_attention(32, 8, 64, {{200, 1}, {7, 1}}, 3, 50, 2);  // soft-capped and windowed, a short row beside
        test_attention(4, 4, 128, {{200, 20}}, 2, 100);           // 16-row prompt tiles, both splits used
        test_attention(6, 2, 40, {{60, 20}}, 2, 10);              // prompt tiles whose second split is empty
        // Half-precision caches: decode, prompt and mixed steps, a split decode, a window.
        for (auto& c : cases) test_attention(32, 8, 64, c, 1, 0, 0, true);
        test_attention(8, 4, 8, {{300, 1}}, 4, 0, 0, true);
        test_attention(6, 2, 40, {{60, 20}}, 2, 10, 0, true);
    }
    if (only.empty() || only == "sampling") test_sampling();
    std::printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
    return failures == 0 ? 0 : 1;
}
