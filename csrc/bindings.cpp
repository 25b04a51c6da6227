// pybind11 layer: tinyllm._bpe. Thin on purpose - argument conversion here (with the
// GIL), all real work in bpe_train.cpp / bpe_encode.cpp with the GIL released.
// The Python API, its checks and its messages live in tinyllm/tokenizer/native.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bpe_encode.h"
#include "bpe_train.h"
#include "jsonl_text.h"
#include "merges_text.h"
#include "paragraphs.h"
#include "pretokenize.h"
#include "unicode_tables.h"
#include "utf8.h"

namespace py = pybind11;
using namespace tinyllm;

namespace {

Pattern parse_pattern(const std::string& name) {
    if (name == "gpt4") return Pattern::kGpt4;
    if (name == "gpt2") return Pattern::kGpt2;
    throw std::invalid_argument("unknown split pattern '" + name + "'; expected 'gpt4' or 'gpt2'");
}

// UTF-8 of a str (lone surrogates as "surrogatepass" writes them) or the bytes of a
// bytes object. The view points into `obj` (CPython caches a str's UTF-8) or into
// `storage`; either way it lives as long as both do. Needs the GIL.
std::string_view utf8_of(PyObject* obj, std::string& storage) {
    if (PyUnicode_Check(obj)) {
        Py_ssize_t n;
        if (const char* p = PyUnicode_AsUTF8AndSize(obj, &n)) return {p, size_t(n)};
        PyErr_Clear();  // lone surrogates: not valid UTF-8, write them the surrogatepass way
        PyObject* b = PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass");
        if (!b) throw py::error_already_set();
        storage.assign(PyBytes_AS_STRING(b), size_t(PyBytes_GET_SIZE(b)));
        Py_DECREF(b);
        return storage;
    }
    if (PyBytes_Check(obj)) return {PyBytes_AS_STRING(obj), size_t(PyBytes_GET_SIZE(obj))};
    throw py::type_error(std::string("expected str or bytes, got ") + Py_TYPE(obj)->tp_name);
}

// A str of a batch as the encoder reads it without the GIL: ASCII (and bytes) as UTF-8 in
// place; any other str as its code units, which the worker turns into UTF-8 (so the caller
// does no per-character work while it holds the GIL). The object must outlive the batch.
Encoder::BatchText batch_text(PyObject* obj) {
    if (PyUnicode_Check(obj)) {
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(obj) < 0) throw py::error_already_set();
#endif
        const size_t n = size_t(PyUnicode_GET_LENGTH(obj));
        if (PyUnicode_IS_ASCII(obj)) return {PyUnicode_DATA(obj), n, 0};
        return {PyUnicode_DATA(obj), n, int(PyUnicode_KIND(obj))};
    }
    if (PyBytes_Check(obj)) return {PyBytes_AS_STRING(obj), size_t(PyBytes_GET_SIZE(obj)), 0};
    throw py::type_error(std::string("expected str or bytes, got ") + Py_TYPE(obj)->tp_name);
}

// Python ints for every id, made once: building a 25M-element list then costs an
// INCREF per element instead of an allocation.
class IntCache {
  public:
    explicit IntCache(size_t n) {
        ints_.reserve(n);
        for (size_t i = 0; i < n; ++i) ints_.push_back(py::int_(i));
    }
    py::list to_list(const std::vector<uint32_t>& ids) const { return to_list(ids.data(), ids.size()); }
    py::list to_list(const uint32_t* ids, size_t n) const {
        PyObject* list = PyList_New(Py_ssize_t(n));
        if (!list) throw py::error_already_set();
        for (size_t i = 0; i < n; ++i) {
            PyObject* o = ints_[ids[i]].ptr();
            Py_INCREF(o);
            PyList_SET_ITEM(list, Py_ssize_t(i), o);
        }
        return py::reinterpret_steal<py::list>(list);
    }

  private:
    std::vector<py::int_> ints_;
};

class PyEncoder {
  public:
    PyEncoder(const std::vector<Merge>& merges, const std::string& pattern)
        : enc_(merges, parse_pattern(pattern)), ints_(enc_.vocab_size()) {}

    py::list encode(py::handle text, unsigned allowed) const {
        std::string storage;
        const std::string_view s = utf8_of(text.ptr(), storage);
        std::vector<uint32_t> ids;
        {
            py::gil_scoped_release release;
            ids.reserve(s.size() / 4 + 16);
            const auto* p = reinterpret_cast<const uint8_t*>(s.data());
            // Reuse this encoder's memo across calls (a fresh one is a ~48 KB table to
            // zero); a call that finds it in use by another thread takes a fresh one.
            std::unique_lock<std::mutex> lock(cache_mu_, std::try_to_lock);
            if (lock.owns_lock()) {
                try {
                    enc_.encode(p, s.size(), allowed, ids, cache_);
                } catch (...) {  // the memo may be half-written: drop it (clear never allocates)
                    cache_.index.clear();
                    cache_.ids.clear();
                    throw;
                }
            } else {
                Encoder::Cache cache;
                enc_.encode(p, s.size(), allowed, ids, cache);
            }
        }
        return ints_.to_list(ids);
    }

    // -> one list of ids per text. Reading the texts, UTF-8 and encoding run without the GIL;
    // only the lists are made with it (an INCREF per id from the int cache). num_threads threads
    // in all, this one included, take the lowest block not yet taken; this thread also builds the
    // lists of the finished blocks, in order, and encodes only while the next one to build is not
    // finished. So no thread waits for the lists, none is left idle, and nothing but the last
    // block's lists comes after the encoding. (Encoding on num_threads threads of their own, with
    // this one building the lists beside them, ran 2 threads at 1.75-1.80x one thread.) The
    // cyclic GC is paused while the lists are built: lists of ints hold no cycles, and a
    // collection every 700 new lists would rescan all of them.
    py::list encode_batch(py::sequence texts, unsigned allowed, int num_threads) const {
        std::vector<py::object> keep;
        const std::vector<Encoder::BatchText> refs = batch_texts(texts, keep);
        Encoder::Batch batch = Encoder::plan_batch(refs);
        const size_t n_blocks = batch.ids.size();
        py::list result = py::reinterpret_steal<py::list>(PyList_New(Py_ssize_t(refs.size())));
        if (!result) throw py::error_already_set();
        GcPause pause;
        Blocks blocks(n_blocks);
        auto take = [&](Encoder::Cache& cache, std::string& utf8) {  // encode the next block; false: none left
            const size_t b = blocks.next.fetch_add(1, std::memory_order_relaxed);
            if (b >= n_blocks) return false;
            enc_.encode_block(batch, refs, b, allowed, cache, utf8);
            blocks.mark(b);
            return true;
        };
        std::vector<std::thread> helpers;
        struct Join {  // the helpers read this frame: join them (without the GIL) however we leave
            std::vector<std::thread>& ts;
            ~Join() {
                py::gil_scoped_release release;
                for (auto& t : ts) t.join();
            }
        } join{helpers};
        const size_t threads = std::min<size_t>(std::max(1, num_threads), std::max<size_t>(1, n_blocks));
        for (size_t t = 1; t < threads; ++t)
            helpers.emplace_back([&] {
                try {
                    Encoder::Cache cache;
                    std::string utf8;
                    while (take(cache, utf8)) {
                    }
                } catch (...) {  // bad_alloc: rethrown on this thread
                    blocks.fail(std::current_exception());
                }
            });
        Encoder::Cache cache;
        std::string utf8;
        for (size_t b = 0; b < n_blocks; ++b) {
            if (!blocks.done(b)) {
                py::gil_scoped_release release;
                while (!blocks.done(b) && take(cache, utf8)) {
                }
                blocks.wait(b);
            }
            blocks.rethrow();
            const uint32_t* ids = batch.ids[b].data();
            for (size_t k = 0; k < batch.lengths[b].size(); ++k) {
                PyList_SET_ITEM(result.ptr(), Py_ssize_t(batch.first[b] + k), to_list_steal(ids, batch.lengths[b][k]));
                ids += batch.lengths[b][k];
            }
            std::vector<uint32_t>().swap(batch.ids[b]);
        }
        return result;
    }

    // -> (ids uint32 array, offsets int64 array of len(texts) + 1): text i is
    // ids[offsets[i]:offsets[i+1]]. No Python object per text or per id.
    py::tuple encode_batch_flat(py::sequence texts, unsigned allowed, int num_threads) const {
        std::vector<py::object> keep;
        const Encoder::Batch batch = run_batch(texts, allowed, num_threads, keep);
        return flat_arrays(batch, keep.size(), num_threads);
    }

    // The documents of whole texts: each text cut into paragraphs (paragraphs.h), each paragraph
    // + "\n\n" encoded as encode_batch_flat encodes a document -> (ids, offsets of the documents,
    // number of documents of each text, characters of each text's documents, "\n\n" included). The
    // same ids as encode_batch_flat on the documents tinyllm.data.corpus makes of the texts, with no
    // Python string per document.
    // A text may be bytes of valid UTF-8 (the caller checks: utf8_valid), cut and encoded as its str would be.
    py::tuple encode_paragraphs_flat(py::sequence texts, unsigned allowed, int num_threads) const {
        for (py::handle t : texts) require_text(t, "encode_paragraphs_flat");
        std::vector<py::object> keep;
        const std::vector<Encoder::BatchText> refs = batch_texts(texts, keep);
        std::vector<Encoder::BatchText> docs;
        std::vector<int64_t> counts, chars;
        Encoder::Batch batch;
        {
            py::gil_scoped_release release;
            Encoder::paragraph_texts(refs, num_threads, docs, counts, chars);
            batch = enc_.encode_batch(docs, allowed, num_threads);
        }
        const py::tuple flat = flat_arrays(batch, docs.size(), num_threads);
        return py::make_tuple(flat[0], flat[1], py::array_t<int64_t>(py::ssize_t(counts.size()), counts.data()),
                              py::array_t<int64_t>(py::ssize_t(chars.size()), chars.data()));
    }

    // The paragraphs of one text as (start, end) offsets (paragraphs.h): code points of a str that is
    // not ASCII, bytes of bytes (and of an ASCII str). For tests.
    std::vector<std::pair<size_t, size_t>> paragraph_spans(py::handle text) const {
        require_text(text, "paragraph_spans");
        const Encoder::BatchText t = batch_text(text.ptr());
        std::vector<Span> spans;
        paragraphs(t.data, t.size, t.width, spans);
        std::vector<std::pair<size_t, size_t>> out;
        for (const Span& sp : spans) out.emplace_back(sp.begin, sp.end);
        return out;
    }

    py::bytes decode_bytes(const std::vector<uint32_t>& ids) const {
        std::string s;
        {
            py::gil_scoped_release release;
            s = enc_.decode(ids.data(), ids.size());
        }
        return py::bytes(s);
    }

    size_t vocab_size() const { return enc_.vocab_size(); }

    // id -> bytes of every token (specials: their names), the reference's vocab list
    py::list token_bytes() const {
        const auto& tokens = enc_.token_bytes();
        py::list out(tokens.size());
        for (size_t i = 0; i < tokens.size(); ++i) out[i] = py::bytes(tokens[i]);
        return out;
    }

  private:
    // Pauses the cyclic GC for a scope (restores it only if it was on).
    struct GcPause {
#if PY_VERSION_HEX >= 0x030A0000
        int was = PyGC_Disable();
        ~GcPause() {
            if (was) PyGC_Enable();
        }
#endif
    };

    // encode_batch's blocks: the next one to take, which are finished (set by the encoders, waited
    // on by the list builder), and a helper's error.
    class Blocks {
      public:
        explicit Blocks(size_t n) : done_(new std::atomic<bool>[n]()) {}
        std::atomic<size_t> next{0};
        bool done(size_t b) const { return done_[b].load(std::memory_order_acquire); }
        void mark(size_t b) {
            {
                std::lock_guard<std::mutex> lock(mu_);  // (a waiter checks done() under it: no lost wake-up)
                done_[b].store(true, std::memory_order_release);
            }
            cv_.notify_one();
        }
        void fail(std::exception_ptr e) {
            {
                std::lock_guard<std::mutex> lock(mu_);
                if (!error_) error_ = e;
            }
            cv_.notify_one();
        }
        void wait(size_t b) {  // until block b is finished or a helper failed
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return done(b) || error_; });
        }
        void rethrow() {
            std::lock_guard<std::mutex> lock(mu_);
            if (error_) std::rethrow_exception(error_);
        }

      private:
        std::unique_ptr<std::atomic<bool>[]> done_;
        std::mutex mu_;
        std::condition_variable cv_;
        std::exception_ptr error_;
    };

    // (ids, offsets of its n texts) numpy arrays of a batch, copied out on num_threads threads.
    static py::tuple flat_arrays(const Encoder::Batch& batch, size_t n, int num_threads) {
        py::array_t<uint32_t> ids(py::ssize_t(batch.total()));
        py::array_t<int64_t> offsets(py::ssize_t(n + 1));
        uint32_t* ip = ids.mutable_data();
        int64_t* op = offsets.mutable_data();
        {
            py::gil_scoped_release release;
            Encoder::flatten(batch, ip, op, num_threads);
        }
        return py::make_tuple(ids, offsets);
    }

    // Paragraphs are cut by code point: a str, or bytes read as UTF-8.
    static void require_text(py::handle t, const char* fn) {
        if (!PyUnicode_Check(t.ptr()) && !PyBytes_Check(t.ptr()))
            throw py::type_error(std::string(fn) + " takes str or UTF-8 bytes, got " + Py_TYPE(t.ptr())->tp_name);
    }

    std::vector<Encoder::BatchText> batch_texts(py::sequence texts, std::vector<py::object>& keep) const {
        const size_t n = texts.size();
        keep.resize(n);  // hold the strs: their storage is read without the GIL
        std::vector<Encoder::BatchText> refs(n);
        for (size_t i = 0; i < n; ++i) {
            keep[i] = texts[i];
            refs[i] = batch_text(keep[i].ptr());
        }
        return refs;
    }

    Encoder::Batch run_batch(py::sequence texts, unsigned allowed, int num_threads,
                             std::vector<py::object>& keep) const {
        const std::vector<Encoder::BatchText> refs = batch_texts(texts, keep);
        py::gil_scoped_release release;
        return enc_.encode_batch(refs, allowed, num_threads);
    }
    PyObject* to_list_steal(const uint32_t* ids, size_t n) const { return ints_.to_list(ids, n).release().ptr(); }

    Encoder enc_;
    IntCache ints_;
    mutable std::mutex cache_mu_;  // guards cache_ (encode runs without the GIL)
    mutable Encoder::Cache cache_;
};

// The texts (each + "\n\n") of the complete lines of `in` that JsonlLine decides, up to the first it
// leaves to Python, appended to out (valid UTF-8) -> what was taken.
struct JsonlTaken {
    size_t bytes = 0, lines = 0, records = 0;
};

JsonlTaken take_jsonl(std::string_view in, const std::string& field, std::string& out) {
    JsonlTaken t;
    out.reserve(out.size() + in.size());
    for (size_t nl; (nl = in.find('\n', t.bytes)) != std::string_view::npos; t.bytes = nl + 1, ++t.lines) {
        const auto kind = JsonlLine::read(in.substr(t.bytes, nl - t.bytes), field, out);
        if (kind == JsonlLine::Kind::Undecided) break;
        if (kind == JsonlLine::Kind::Text) {
            out.append("\n\n");
            ++t.records;
        }
    }
    return t;
}

class PyTrainer {
    // A sequence of str/bytes held, and read as UTF-8 without the GIL (as in encode_batch; the trainer
    // copies each text once, into its work chunks).
    struct Views {
        std::vector<py::object> keep;
        std::vector<std::string> storage;  // a str's surrogatepass UTF-8
        std::vector<std::string_view> views;
        std::vector<size_t> raw;  // which are bytes
        explicit Views(py::sequence texts) : keep(texts.size()), storage(texts.size()), views(texts.size()) {
            for (size_t i = 0; i < keep.size(); ++i) {
                keep[i] = texts[i];
                views[i] = utf8_of(keep[i].ptr(), storage[i]);
                if (PyBytes_Check(keep[i].ptr())) raw.push_back(i);
            }
        }
    };

  public:
    PyTrainer(const std::string& pattern, int num_threads) : trainer_(parse_pattern(pattern), num_threads) {}

    void add_texts(py::sequence texts, bool wait) {
        const Views v(texts);
        py::gil_scoped_release release;
        trainer_.add_texts(v.views, wait);
    }

    // Texts whose paragraphs are the documents (Trainer::add_paragraphs): str, or bytes of valid
    // UTF-8 (checked here: a block that is not would be counted as its raw bytes).
    void add_paragraphs(py::sequence texts, bool wait, bool open_end) {
        const Views v(texts);
        py::gil_scoped_release release;
        for (size_t i : v.raw)
            if (!valid_utf8(reinterpret_cast<const uint8_t*>(v.views[i].data()), v.views[i].size()))
                throw py::value_error("add_paragraphs: texts[" + std::to_string(i) + "] is bytes but not valid UTF-8");
        trainer_.add_paragraphs(v.views, wait, open_end);
    }

    py::tuple add_file(const std::string& path) {
        Trainer::FileStats st;
        {
            py::gil_scoped_release release;
            st = trainer_.add_file(path);
        }
        return py::make_tuple(st.bytes, st.replaced);
    }

    // Feed a stream's next UTF-8 bytes (any buffer: bytes, memoryview, a pyarrow Buffer; read
    // in place without the GIL). final=true ends the stream -> (bytes fed, invalid UTF-8
    // sequences replaced); before that -> None. One stream at a time.
    py::object add_bytes(py::buffer data, bool final) {
        const py::buffer_info info = data.request();
        const size_t n = size_t(info.size) * size_t(info.itemsize);
        {
            py::gil_scoped_release release;
            trainer_.feed(stream_, static_cast<const char*>(info.ptr), n, final);
        }
        if (!final) return py::none();
        const Trainer::FileStats st = stream_.stats;
        stream_ = Trainer::Stream();
        return py::make_tuple(st.bytes, st.replaced);
    }

    // JSON Lines into add_bytes's stream: the records' texts of data's complete lines (each
    // text + "\n\n"), up to the first line that JsonlLine leaves to Python ->
    // (bytes consumed, lines consumed, records among them). data: any buffer, read in place.
    py::tuple add_jsonl(py::buffer data, const std::string& field) {
        const py::buffer_info info = data.request();
        const std::string_view in(static_cast<const char*>(info.ptr), size_t(info.size) * size_t(info.itemsize));
        JsonlTaken taken;
        {
            py::gil_scoped_release release;
            std::string out;
            taken = take_jsonl(in, field, out);
            trainer_.feed(stream_, out.data(), out.size(), false, false);
        }
        return py::make_tuple(taken.bytes, taken.lines, taken.records);
    }

    // A text (str: its UTF-8, lone surrogates the surrogatepass way, as add_texts reads it) into
    // add_bytes's stream, unrepaired.
    void add_stream_text(py::handle text) {
        std::string storage;
        const std::string_view s = utf8_of(text.ptr(), storage);
        py::gil_scoped_release release;
        trainer_.feed(stream_, s.data(), s.size(), false, false);
    }

    std::vector<Merge> train(size_t n_merges) {
        py::gil_scoped_release release;
        return trainer_.train(n_merges);
    }

    py::dict pretoken_counts() {
        std::vector<std::pair<std::string, int64_t>> counts;
        {
            py::gil_scoped_release release;
            counts = trainer_.pretoken_counts();
        }
        py::dict d;
        for (auto& [k, v] : counts) d[py::bytes(k)] = v;
        return d;
    }

    size_t num_pretokens() {
        py::gil_scoped_release release;
        return trainer_.num_pretokens();
    }
    uint64_t bytes_read() const { return trainer_.bytes_read(); }
    uint64_t merges_done() const { return trainer_.merges_done(); }

  private:
    Trainer trainer_;
    Trainer::Stream stream_;  // add_bytes's stream
};

}  // namespace

PYBIND11_MODULE(_bpe, m) {
    m.doc() = "tinyllm's C++ byte-level BPE core (see tinyllm/tokenizer/native.py for the Python API)";
    m.attr("UNICODE_REGEX_VERSION") = TINYLLM_UNICODE_REGEX_VERSION;

    py::register_exception<std::invalid_argument>(m, "InvalidArgument", PyExc_ValueError);

    m.def(
        "pretokenize",
        [](py::handle text, const std::string& pattern) {
            std::string storage;
            const std::string_view s = utf8_of(text.ptr(), storage);
            std::vector<std::pair<size_t, size_t>> spans;
            {
                py::gil_scoped_release release;
                pretokenize(parse_pattern(pattern), reinterpret_cast<const uint8_t*>(s.data()), s.size(),
                            [&](size_t a, size_t b) { spans.emplace_back(a, b); });
            }
            py::list out;
            for (auto [a, b] : spans) out.append(py::bytes(s.data() + a, b - a));
            return out;
        },
        py::arg("text"), py::arg("pattern") = "gpt4", "Pre-tokens of text as UTF-8 bytes (tests compare with `regex`).");

    m.def(
        "repair_utf8",
        [](py::bytes data, size_t block) {
            const std::string in = data;
            std::string out;
            uint64_t replaced = 0;
            {
                py::gil_scoped_release release;
                // feed it in blocks through add_file's helper, to test the carry across edges
                std::string pending;
                const size_t step = block ? block : in.size() + 1;
                for (size_t pos = 0;; pos += step) {
                    const bool final = pos + step >= in.size();
                    const size_t at = std::min(pos, in.size());
                    repair_utf8_block(pending, in.data() + at, std::min(step, in.size() - at), final, out, replaced);
                    if (final) break;
                }
            }
            return py::make_tuple(py::bytes(out), replaced);
        },
        py::arg("data"), py::arg("block") = 0,
        "Invalid UTF-8 replaced by U+FFFD as bytes.decode('utf-8', 'replace') does; returns (bytes, count).");

    m.def(
        "utf8_valid",
        [](py::bytes data) {
            const std::string_view s(data);
            py::gil_scoped_release release;
            return valid_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size());
        },
        py::arg("data"),
        "Whether data.decode('utf-8') would succeed (repair_utf8 replaces nothing), without the GIL "
        "and without making a str: `tinyllm prepare` hands valid blocks to the encoder as bytes.");

    m.def(
        "char_classes",
        [] {
            std::string out(0x110000, '\0');
            for (uint32_t cp = 0; cp < 0x110000; ++cp) out[cp] = static_cast<char>(class_of(cp));
            return py::bytes(out);
        },
        "Class of every code point (0 other, 1 letter, 2 number, 3 space) from the compiled table.");

    m.def(
        "merges_if_well_formed",
        [](py::list lines, uint32_t byte_offset) -> py::object {
            std::vector<std::string_view> views;
            views.reserve(lines.size());
            for (py::handle h : lines) {
                if (!PyUnicode_Check(h.ptr())) return py::none();
                Py_ssize_t n;
                const char* s = PyUnicode_AsUTF8AndSize(h.ptr(), &n);  // an ASCII str's own storage: no copy
                if (!s) throw py::error_already_set();
                views.emplace_back(s, size_t(n));
            }
            std::vector<std::pair<uint32_t, uint32_t>> merges;
            bool ok;
            {
                py::gil_scoped_release release;  // `lines` holds the strs the views point into
                ok = merges_if_well_formed(views, byte_offset, merges);
            }
            if (!ok) return py::none();
            py::list out(merges.size());
            for (size_t i = 0; i < merges.size(); ++i)
                PyList_SET_ITEM(out.ptr(), Py_ssize_t(i), py::make_tuple(merges[i].first, merges[i].second).release().ptr());
            return std::move(out);
        },
        py::arg("lines"), py::arg("byte_offset"),
        "The merges of a tokenizer file's merge lines when every line is well formed, else None "
        "(tinyllm/tokenizer/format.py's _read_merges_checked is the reference and words the error).");

    m.def("bytes_repr", [](py::bytes b) { return bytes_repr(std::string_view(b)); }, py::arg("data"),
          "repr() of a bytes object, as merges_if_well_formed writes it (tests compare with Python).");

    m.def("contraction_fold", [](uint32_t cp) { return std::string(1, fold_contraction(cp)); });

    py::class_<PyEncoder>(m, "Encoder")
        .def(py::init<const std::vector<Merge>&, const std::string&>(), py::arg("merges"), py::arg("pattern"))
        .def("encode", &PyEncoder::encode, py::arg("text"), py::arg("allowed"))
        .def("encode_batch", &PyEncoder::encode_batch, py::arg("texts"), py::arg("allowed"), py::arg("num_threads"))
        .def("encode_batch_flat", &PyEncoder::encode_batch_flat, py::arg("texts"), py::arg("allowed"),
             py::arg("num_threads"))
        .def("encode_paragraphs_flat", &PyEncoder::encode_paragraphs_flat, py::arg("texts"), py::arg("allowed"),
             py::arg("num_threads"))
        .def("paragraph_spans", &PyEncoder::paragraph_spans, py::arg("text"))
        .def("decode_bytes", &PyEncoder::decode_bytes, py::arg("ids"))
        .def_property_readonly("vocab_size", &PyEncoder::vocab_size)
        .def("token_bytes", &PyEncoder::token_bytes);

    // take_jsonl as bytes (what Trainer.add_jsonl feeds its stream), for readers that cut the texts into
    // documents (corpus.text_blocks) -> (texts, bytes taken, lines, records).
    m.def(
        "jsonl_texts",
        [](py::buffer data, const std::string& field) -> py::tuple {
            const py::buffer_info info = data.request();
            const std::string_view in(static_cast<const char*>(info.ptr), size_t(info.size) * size_t(info.itemsize));
            std::string out;
            JsonlTaken t;
            {
                py::gil_scoped_release release;
                t = take_jsonl(in, field, out);
            }
            return py::make_tuple(py::bytes(out), t.bytes, t.lines, t.records);
        },
        py::arg("data"), py::arg("field"));

    // One JSON Lines line as add_jsonl decides it -> ("blank" | "text" | "undecided", text bytes or None).
    m.def(
        "jsonl_line",
        [](py::bytes line, const std::string& field) -> py::tuple {
            std::string out;
            const auto kind = JsonlLine::read(std::string_view(line), field, out);
            if (kind == JsonlLine::Kind::Text) return py::make_tuple("text", py::bytes(out));
            return py::make_tuple(kind == JsonlLine::Kind::Blank ? "blank" : "undecided", py::none());
        },
        py::arg("line"), py::arg("field"));

    py::class_<PyTrainer>(m, "Trainer")
        .def(py::init<const std::string&, int>(), py::arg("pattern"), py::arg("num_threads"))
        .def("add_texts", &PyTrainer::add_texts, py::arg("texts"), py::arg("wait") = true)
        .def("add_paragraphs", &PyTrainer::add_paragraphs, py::arg("texts"), py::arg("wait") = true,
             py::arg("open_end") = false)
        .def("add_file", &PyTrainer::add_file, py::arg("path"))
        .def("add_bytes", &PyTrainer::add_bytes, py::arg("data"), py::arg("final") = false)
        .def("add_jsonl", &PyTrainer::add_jsonl, py::arg("data"), py::arg("field"))
        .def("add_stream_text", &PyTrainer::add_stream_text, py::arg("text"))
        .def("train", &PyTrainer::train, py::arg("n_merges"))
        .def("pretoken_counts", &PyTrainer::pretoken_counts)
        .def("num_pretokens", &PyTrainer::num_pretokens)
        .def_property_readonly("bytes_read", &PyTrainer::bytes_read)
        .def_property_readonly("merges_done", &PyTrainer::merges_done);
}
