// One decode step's attention for rows that each sit at their own position in their own KV cache
// (continuous batching): row b stores its new key/value at position lengths[b] of its cache, then
// its query attends to positions 0..lengths[b]. The reference is
// tinyllm/model/decode_attention.py:decode_attention_ref (a scaled_dot_product_attention per row).
//
// Why a kernel: per row and layer the torch version is ~6 small ops (two cache writes, three
// slices, one SDPA call) of 5-20 us of dispatch each, against well under a microsecond of
// arithmetic at decode sizes; at 16 rows that was most of a serving step. Each row is computed
// by one fixed loop over its own keys, so its bits never depend on the other rows of the step.
//
// Layouts (float32): q, k, v (rows, H, D) with strides (row, head, 1); caches (H, L, D) contiguous
// per row (a KVCache of batch 1, or one slot of a SlotCache); out (rows_padded, H, D) contiguous,
// rows past len(lengths) are zeroed (padding rows, see model/gpt.py ROW_QUANTUM).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

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

void attend_row(const Rows& q, const Rows& k, const Rows& v, int64_t b, float* kc, float* vc, int64_t n, int64_t H,
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

void decode_attention(uintptr_t q, int64_t q_row, int64_t q_head, uintptr_t k, int64_t k_row, int64_t k_head,
                      uintptr_t v, int64_t v_row, int64_t v_head, const std::vector<uintptr_t>& k_caches,
                      const std::vector<uintptr_t>& v_caches, const std::vector<int64_t>& lengths, uintptr_t out,
                      int64_t rows_padded, int64_t H, int64_t L, int64_t D, double scale) {
    const size_t B = lengths.size();
    if (k_caches.size() != B || v_caches.size() != B || int64_t(B) > rows_padded)
        throw std::invalid_argument("decode_attention: " + std::to_string(B) + " lengths for " +
                                    std::to_string(k_caches.size()) + " key and " + std::to_string(v_caches.size()) +
                                    " value caches, " + std::to_string(rows_padded) + " rows");
    for (int64_t n : lengths)
        if (n < 0 || n >= L)
            throw std::out_of_range("decode_attention: position " + std::to_string(n) + " outside a cache of " +
                                    std::to_string(L));
    const Rows qr{reinterpret_cast<const float*>(q), q_row, q_head};
    const Rows kr{reinterpret_cast<const float*>(k), k_row, k_head};
    const Rows vr{reinterpret_cast<const float*>(v), v_row, v_head};
    float* o = reinterpret_cast<float*>(out);
    py::gil_scoped_release release;
    std::vector<float> p;
    for (size_t b = 0; b < B; ++b)
        attend_row(qr, kr, vr, int64_t(b), reinterpret_cast<float*>(k_caches[b]), reinterpret_cast<float*>(v_caches[b]),
                   lengths[b], H, L, D, float(scale), o, p);
    std::fill(o + int64_t(B) * H * D, o + rows_padded * H * D, 0.f);
}

}  // namespace

PYBIND11_MODULE(_ops, m) {
    m.doc() = "tinyllm's CPU ops (see tinyllm/model/decode_attention.py)";
    m.def("decode_attention", &decode_attention, py::arg("q"), py::arg("q_row"), py::arg("q_head"), py::arg("k"),
          py::arg("k_row"), py::arg("k_head"), py::arg("v"), py::arg("v_row"), py::arg("v_head"), py::arg("k_caches"),
          py::arg("v_caches"), py::arg("lengths"), py::arg("out"), py::arg("rows_padded"), py::arg("H"), py::arg("L"),
          py::arg("D"), py::arg("scale"));
}
