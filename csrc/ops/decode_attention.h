// One row of a decode step's attention (see decode_attention.cpp, which binds it for
// model/decode_attention.py, and decode_step.cpp, which runs it inside the whole native step).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace tinyllm_ops {

struct Rows {  // (rows, H, D) float32, last dimension contiguous
    const float* data;
    int64_t row, head;
    const float* at(int64_t b, int64_t h) const { return data + b * row + h * head; }
};

// q . k in eight interleaved partial sums added in a fixed order: the compiler can keep them in
// vector registers (a single running sum is a serial chain it may not reorder), and the order, so
// the bits, depends only on D.
inline float dot(const float* a, const float* b, int64_t D) {
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int64_t d = 0;
    for (; d + 8 <= D; d += 8)
        for (int l = 0; l < 8; ++l) acc[l] += a[d + l] * b[d + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; d < D; ++d) s += a[d] * b[d];
    return s;
}

inline void attend_row(const Rows& q, const Rows& k, const Rows& v, int64_t b, float* kc, float* vc, int64_t n, int64_t H,
                int64_t L, int64_t D, float scale, float* out, std::vector<float>& p) {
    p.resize(size_t(n + 1));
    for (int64_t h = 0; h < H; ++h) {
        float* kh = kc + h * L * D;  // (L, D) of this head
        float* vh = vc + h * L * D;
        std::memcpy(kh + n * D, k.at(b, h), sizeof(float) * size_t(D));
        std::memcpy(vh + n * D, v.at(b, h), sizeof(float) * size_t(D));
        const float* qh = q.at(b, h);
        float m = -INFINITY;
        for (int64_t j = 0; j <= n; ++j) {
            p[j] = dot(qh, kh + j * D, D) * scale;
            m = std::max(m, p[j]);
        }
        float sum = 0.f;
        for (int64_t j = 0; j <= n; ++j) sum += (p[j] = std::exp(p[j] - m));
        float* o = out + (b * H + h) * D;
        std::fill(o, o + D, 0.f);
        for (int64_t j = 0; j <= n; ++j) {
            const float w = p[j] / sum;
            const float* vj = vh + j * D;
            for (int64_t d = 0; d < D; ++d) o[d] += w * vj[d];
        }
    }
}

}  // namespace tinyllm_ops
