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

#include "decode_attention.h"

namespace py = pybind11;
using namespace tinyllm_ops;

namespace {

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

void bind_decode_attention(py::module_& m) {
    m.def("decode_attention", &decode_attention, py::arg("q"), py::arg("q_row"), py::arg("q_head"), py::arg("k"),
          py::arg("k_row"), py::arg("k_head"), py::arg("v"), py::arg("v_row"), py::arg("v_head"), py::arg("k_caches"),
          py::arg("v_caches"), py::arg("lengths"), py::arg("out"), py::arg("rows_padded"), py::arg("H"), py::arg("L"),
          py::arg("D"), py::arg("scale"));
}
