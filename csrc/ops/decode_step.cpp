// The whole decode step of a float32 TinyLLM on the CPU in one call: embeddings, every block
// (LayerNorm, qkv, rotary, attention against each row's own cache, projection, LayerNorm, MLP),
// the final LayerNorm and the LM head, for B rows that each sit at their own position in their own
// KV cache. The reference is TinyLLM.forward_rows' torch path (model/gpt.py); tinyllm/model/
// decode_step.py packs the weights, checks what it is given and calls this.
//
// Why: at decode sizes a step is ~25 matmuls of a few rows and ~100 small ops; through torch each
// op costs 5-20 us of dispatch from Python (a oneDNN linear ~11 us even for a 32 x 64 weight), which
// was most of demo's 0.7 ms step, while its arithmetic (1.8 M multiply-adds a row) takes well under
// 0.1 ms. Here the step runs without the GIL, one thread.
//
// Same bits whatever the batch: every output of a matmul is one chain of fused multiply-adds over
// k = 0 .. K-1 in order, started from zero, then its bias added, in whichever tile it falls; the
// other ops are per row. So a row's logits never depend on which rows share the step, with no
// padding (tests/test_decode_step.py checks it bit for bit).
//
// Weights come packed in panels of W outputs (8 for the AVX2 kernels, 16 for AVX-512): W (N, K) ->
// Wp (ceil(N/W), K, W), zero-padded, so a tile reads W consecutive outputs of one k as one vector.
// Activations are (B, ld) row-major with ld a multiple of W; columns past the true width are zero
// and never read as inputs.
#include <immintrin.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "decode_attention.h"

namespace py = pybind11;
using namespace tinyllm_ops;

#define TL_AVX2 __attribute__((target("avx2,fma")))

namespace {

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {  // 16 vector registers: tiles of at most 12 accumulators
using V = __m256;
constexpr int64_t W = 8;
constexpr int P4 = 3, P1 = 8, P2 = 4, P3 = 3;
inline V vzero() { return _mm256_setzero_ps(); }
inline V vload(const float* p) { return _mm256_loadu_ps(p); }
inline V vbcast(const float* p) { return _mm256_broadcast_ss(p); }
inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
inline void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
#include "decode_matmul.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {  // 32 vector registers of 16 floats (full width on AMD Zen 5: 2x AVX2's FMA rate, measured)
using V = __m512;
constexpr int64_t W = 16;
constexpr int P4 = 4, P1 = 8, P2 = 6, P3 = 4;
inline V vzero() { return _mm512_setzero_ps(); }
inline V vload(const float* p) { return _mm512_loadu_ps(p); }
inline V vbcast(const float* p) { return _mm512_set1_ps(*p); }
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
inline void vstore(float* p, V v) { _mm512_storeu_ps(p, v); }
#include "decode_matmul.inc"
}  // namespace avx512
#pragma GCC pop_options

using Matmul = void (*)(const float*, int64_t, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t);

bool supported() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool avx512_supported() { return supported() && __builtin_cpu_supports("avx512f"); }

// nn.LayerNorm over C (biased variance, two passes), w and b optional.
void layer_norm(const float* x, int64_t C, const float* w, const float* b, float eps, float* y) {
    float mean = 0.f;
    for (int64_t c = 0; c < C; ++c) mean += x[c];
    mean /= float(C);
    float var = 0.f;
    for (int64_t c = 0; c < C; ++c) var += (x[c] - mean) * (x[c] - mean);
    const float inv = 1.f / std::sqrt(var / float(C) + eps);
    for (int64_t c = 0; c < C; ++c) {
        float v = (x[c] - mean) * inv;
        if (w) v *= w[c];
        if (b) v += b[c];
        y[c] = v;
    }
}

// e^x for 8 floats (Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial for e^r, then
// 2^n; within 2 ulp), clamped to +-88.376 so that it never overflows to inf.
TL_AVX2 inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f)), _mm256_set1_ps(88.3762626647949f));
    const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// a / (1 + e^-z): silu is z = a; tanh-GELU is z = 2 sqrt(2/pi) (a + 0.044715 a^3), since
// 0.5 a (1 + tanh(u)) = a / (1 + e^(-2u)) (no cancellation near u = 0, unlike 1 - 2 / (1 + e^(2u)))
TL_AVX2 inline __m256 over_one_plus_exp(__m256 a, __m256 z) {
    return _mm256_div_ps(a, _mm256_add_ps(_mm256_set1_ps(1.f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), z))));
}

enum Activation : int { kGelu = 0, kRelu = 1, kSilu = 2, kSwiglu = 3 };

// u (n floats, n a multiple of 8) = act(u), or silu(g) * u for SwiGLU; zero padding stays zero.
TL_AVX2 void activate(int act, float* u, const float* g, int64_t n) {
    const __m256 k2 = _mm256_set1_ps(2.f * 0.7978845608028654f), c = _mm256_set1_ps(0.044715f);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 a = _mm256_loadu_ps(u + i);
        __m256 y;
        if (act == kGelu) {
            const __m256 a3 = _mm256_mul_ps(_mm256_mul_ps(a, a), a);
            y = over_one_plus_exp(a, _mm256_mul_ps(k2, _mm256_fmadd_ps(c, a3, a)));
        } else if (act == kRelu) {
            y = _mm256_max_ps(a, _mm256_setzero_ps());
        } else if (act == kSilu) {
            y = over_one_plus_exp(a, a);
        } else {
            const __m256 gv = _mm256_loadu_ps(g + i);
            y = _mm256_mul_ps(over_one_plus_exp(gv, gv), a);
        }
        _mm256_storeu_ps(u + i, y);
    }
}

struct Layer {  // addresses; 0 where the model has no such tensor (no bias, no gate)
    const float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b, *ln2_w, *ln2_b;
    const float *gate_w, *gate_b, *fc_w, *fc_b, *out_w, *out_b;
};

template <class T>
const T* at(uintptr_t p) {
    return reinterpret_cast<const T*>(p);
}

class DecodeStep {
  public:
    // width: floats a weight panel holds (8: the AVX2 kernels, 16: AVX-512). layers: 14 addresses
    // per block, in Layer's order; tables: token embedding (V, C), position
    // table (context, C) or 0, rotary cos and sin (context, D/2) or 0, final LayerNorm w, b, the
    // packed LM head and its bias (or 0).
    DecodeStep(int64_t width, int64_t C, int64_t H, int64_t F, int64_t V, int64_t context, int activation, double eps,
               const std::vector<uintptr_t>& layers, uintptr_t tok_emb, uintptr_t pos_table, uintptr_t rope_cos,
               uintptr_t rope_sin, uintptr_t lnf_w, uintptr_t lnf_b, uintptr_t head_w, uintptr_t head_b)
        : width_(width), C_(C), H_(H), D_(C / H), F_(F), V_(V), context_(context), act_(activation), eps_(float(eps)) {
        if (width != 8 && !(width == 16 && avx512_supported()))
            throw std::invalid_argument("DecodeStep: panels of " + std::to_string(width) +
                                        " floats (8: AVX2; 16: AVX-512, which this CPU " +
                                        (avx512_supported() ? "has" : "lacks") + ")");
        mm_ = width == 16 ? avx512::matmul : avx2::matmul;
        if (C <= 0 || H <= 0 || C % H || F <= 0 || V <= 0 || context <= 0 || activation < 0 || activation > 3 ||
            layers.empty() || layers.size() % 14)
            throw std::invalid_argument("DecodeStep: inconsistent shape or " + std::to_string(layers.size()) +
                                        " layer addresses (14 per block)");
        for (size_t i = 0; i < layers.size(); i += 14) {
            Layer l;
            const float** f = &l.ln1_w;
            for (int j = 0; j < 14; ++j) f[j] = at<float>(layers[i + j]);
            if (!l.qkv_w || !l.proj_w || !l.fc_w || !l.out_w || (activation == kSwiglu && !l.gate_w))
                throw std::invalid_argument("DecodeStep: a block lacks a weight");
            layers_.push_back(l);
        }
        tok_emb_ = at<float>(tok_emb), pos_ = at<float>(pos_table), cos_ = at<float>(rope_cos);
        sin_ = at<float>(rope_sin), lnf_w_ = at<float>(lnf_w), lnf_b_ = at<float>(lnf_b);
        head_w_ = at<float>(head_w), head_b_ = at<float>(head_b);
        if (!tok_emb_ || !head_w_ || (bool(cos_) != bool(sin_)) || (cos_ && D_ % 2))
            throw std::invalid_argument("DecodeStep: missing embedding, head or rotary table");
    }

    // tokens[b] at position lengths[b] of row b's cache; k_caches[b * n_layers + l]: its (H, L, D)
    // keys of layer l (values alike). Writes every row's keys/values at its position and the
    // logits of rows head_from .. B-1, (B - head_from, V), at `logits`; the caller advances the
    // lengths. Rows run in order within each layer, so rows may share a cache at consecutive
    // positions: that is a prompt's prefill (each row attends to the keys the rows before it wrote).
    void step(const std::vector<int64_t>& tokens, const std::vector<int64_t>& lengths,
              const std::vector<uintptr_t>& k_caches, const std::vector<uintptr_t>& v_caches, int64_t L,
              uintptr_t logits, int64_t head_from) const {
        const int64_t B = int64_t(tokens.size());
        const size_t nl = layers_.size();
        if (B == 0 || lengths.size() != size_t(B) || k_caches.size() != B * nl || v_caches.size() != B * nl)
            throw std::invalid_argument("decode_step: " + std::to_string(B) + " tokens, " +
                                        std::to_string(lengths.size()) + " lengths, " +
                                        std::to_string(k_caches.size()) + " key caches for " + std::to_string(nl) +
                                        " layers");
        if (head_from < 0 || head_from >= B)
            throw std::invalid_argument("decode_step: logits from row " + std::to_string(head_from) + " of " +
                                        std::to_string(B));
        for (int64_t b = 0; b < B; ++b) {
            if (tokens[b] < 0 || tokens[b] >= V_)
                throw std::out_of_range("decode_step: token " + std::to_string(tokens[b]) + " outside a vocabulary of " +
                                        std::to_string(V_));
            if (lengths[b] < 0 || lengths[b] >= std::min(L, context_))
                throw std::out_of_range("decode_step: position " + std::to_string(lengths[b]) + " outside a cache of " +
                                        std::to_string(std::min(L, context_)));
        }
        py::gil_scoped_release release;
        run(B, tokens.data(), lengths.data(), k_caches.data(), v_caches.data(), L, reinterpret_cast<float*>(logits),
            head_from);
    }

  private:
    TL_AVX2 void run(int64_t B, const int64_t* tokens, const int64_t* lengths, const uintptr_t* kc,
                     const uintptr_t* vc, int64_t L, float* logits, int64_t head_from) const {
        const int64_t C = C_, D = D_, H = H_, F = F_, ldc = pad(C), ld3 = pad(3 * C), ldf = pad(F), W = width_;
        std::vector<float> x(B * ldc, 0.f), h(B * ldc, 0.f), qkv(B * ld3), att(B * C), o(B * ldc);
        std::vector<float> u(B * ldf), g(act_ == kSwiglu ? B * ldf : 0), p;
        for (int64_t b = 0; b < B; ++b) {  // embeddings
            const float* e = tok_emb_ + tokens[b] * C;
            const float* pe = pos_ ? pos_ + lengths[b] * C : nullptr;
            for (int64_t c = 0; c < C; ++c) x[b * ldc + c] = pe ? e[c] + pe[c] : e[c];
        }
        const float scale = 1.f / std::sqrt(float(D));
        for (size_t l = 0; l < layers_.size(); ++l) {
            const Layer& w = layers_[l];
            for (int64_t b = 0; b < B; ++b) layer_norm(&x[b * ldc], C, w.ln1_w, w.ln1_b, eps_, &h[b * ldc]);
            mm_(h.data(), B, ldc, C, w.qkv_w, ld3 / W, w.qkv_b, qkv.data(), ld3);
            if (cos_) rotate(qkv.data(), B, ld3, lengths);
            const Rows q{qkv.data(), ld3, D}, k{qkv.data() + C, ld3, D}, v{qkv.data() + 2 * C, ld3, D};
            for (int64_t b = 0; b < B; ++b)
                attend_row(q, k, v, b, reinterpret_cast<float*>(kc[b * layers_.size() + l]),
                           reinterpret_cast<float*>(vc[b * layers_.size() + l]), lengths[b], H, L, D, scale,
                           att.data(), p);
            mm_(att.data(), B, C, C, w.proj_w, ldc / W, w.proj_b, o.data(), ldc);
            for (int64_t b = 0; b < B; ++b)
                for (int64_t c = 0; c < C; ++c) x[b * ldc + c] += o[b * ldc + c];
            for (int64_t b = 0; b < B; ++b) layer_norm(&x[b * ldc], C, w.ln2_w, w.ln2_b, eps_, &h[b * ldc]);
            mm_(h.data(), B, ldc, C, w.fc_w, ldf / W, w.fc_b, u.data(), ldf);
            if (act_ == kSwiglu) mm_(h.data(), B, ldc, C, w.gate_w, ldf / W, w.gate_b, g.data(), ldf);
            activate(act_, u.data(), g.data(), B * ldf);
            mm_(u.data(), B, ldf, F, w.out_w, ldc / W, w.out_b, o.data(), ldc);
            for (int64_t b = 0; b < B; ++b)
                for (int64_t c = 0; c < C; ++c) x[b * ldc + c] += o[b * ldc + c];
        }
        const int64_t R = B - head_from;  // rows that want logits
        const float* hr = &h[head_from * ldc];
        for (int64_t b = head_from; b < B; ++b) layer_norm(&x[b * ldc], C, lnf_w_, lnf_b_, eps_, &h[b * ldc]);
        const int64_t ldv = pad(V_);
        if (ldv == V_) {
            mm_(hr, R, ldc, C, head_w_, ldv / W, head_b_, logits, V_);
        } else {  // the last panel's padding would spill into the next row: go through a padded buffer
            std::vector<float> out(R * ldv);
            mm_(hr, R, ldc, C, head_w_, ldv / W, head_b_, out.data(), ldv);
            for (int64_t b = 0; b < R; ++b) std::copy(&out[b * ldv], &out[b * ldv] + V_, logits + b * V_);
        }
    }

    // Rotary on q and k of every head: each (even, odd) channel pair turned by its angle at the
    // row's position, the arithmetic of Rotary.at (model/positions.py).
    void rotate(float* qkv, int64_t B, int64_t ld, const int64_t* lengths) const {
        const int64_t half = D_ / 2;
        for (int64_t b = 0; b < B; ++b) {
            const float* cs = cos_ + lengths[b] * half;
            const float* sn = sin_ + lengths[b] * half;
            for (int64_t part = 0; part < 2; ++part)  // q, then k
                for (int64_t hd = 0; hd < H_; ++hd) {
                    float* t = qkv + b * ld + part * C_ + hd * D_;
                    for (int64_t i = 0; i < half; ++i) {
                        const float x1 = t[2 * i], x2 = t[2 * i + 1];
                        t[2 * i] = x1 * cs[i] - x2 * sn[i];
                        t[2 * i + 1] = x1 * sn[i] + x2 * cs[i];
                    }
                }
        }
    }

    int64_t pad(int64_t n) const { return (n + width_ - 1) / width_ * width_; }

    int64_t width_, C_, H_, D_, F_, V_, context_;
    Matmul mm_;
    int act_;
    float eps_;
    std::vector<Layer> layers_;
    const float *tok_emb_, *pos_, *cos_, *sin_, *lnf_w_, *lnf_b_, *head_w_, *head_b_;
};


}  // namespace

void bind_decode_step(py::module_& m) {
    m.def("decode_step_supported", &supported, "whether this CPU has the AVX2 and FMA the native step needs");
    m.def("decode_step_avx512", &avx512_supported, "whether this CPU also has AVX-512F (panels of 16 floats)");
    py::class_<DecodeStep>(m, "DecodeStep")
        .def(py::init<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, double, const std::vector<uintptr_t>&,
                      uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t>(),
             py::arg("width"), py::arg("C"), py::arg("H"), py::arg("F"), py::arg("V"), py::arg("context"), py::arg("activation"),
             py::arg("eps"), py::arg("layers"), py::arg("tok_emb"), py::arg("pos_table"), py::arg("rope_cos"),
             py::arg("rope_sin"), py::arg("lnf_w"), py::arg("lnf_b"), py::arg("head_w"), py::arg("head_b"))
        .def("step", &DecodeStep::step, py::arg("tokens"), py::arg("lengths"), py::arg("k_caches"),
             py::arg("v_caches"), py::arg("L"), py::arg("logits"), py::arg("head_from"));
}
