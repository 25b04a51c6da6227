// tinyllm._ops: the model's CPU ops, one per file in csrc/ops/ (each with its torch reference in
// tinyllm/model/), bound here into one extension.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_decode_attention(py::module_& m);
void bind_decode_step(py::module_& m);

PYBIND11_MODULE(_ops, m) {
    m.doc() = "tinyllm's CPU ops (see tinyllm/model/decode_attention.py and decode_step.py)";
    bind_decode_attention(m);
    bind_decode_step(m);
}
