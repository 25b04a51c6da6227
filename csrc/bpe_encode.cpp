#include "bpe_encode.h"
#include "paragraphs.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <thread>

#include "specials.h"
#include "utf8.h"

namespace tinyllm {

namespace {
constexpr size_t kSmallPiece = 64;       // below this, a flat rescan beats a heap
constexpr size_t kCacheEntries = 1 << 16;  // memo size before it is cleared
constexpr size_t kCachedPieceMax = 256;  // longer pre-tokens are not memoized
}  // namespace

Encoder::Encoder(const std::vector<Merge>& merges, Pattern pattern)
    : pattern_(pattern), token_id_(2 * (merges.size() + 256)), pair_rank_(4 * (merges.size() + 256)) {
    for (int k = 0; k < kNumSpecials; ++k) token_bytes_.emplace_back(kSpecialNames[k]);
    for (int b = 0; b < 256; ++b) token_bytes_.emplace_back(1, static_cast<char>(b));
    // the reference's checks, in its words (tinyllm/tokenizer/reference.py: bad_merge_message, DUPLICATE_MERGE_MESSAGE)
    for (size_t i = 0; i < merges.size(); ++i) {
        const Merge& m = merges[i];
        const uint32_t next = static_cast<uint32_t>(token_bytes_.size());
        if (m.first < kByteOffset || m.second < kByteOffset || m.first >= next || m.second >= next)
            throw std::invalid_argument("merge " + std::to_string(i) + " (" + std::to_string(m.first) + ", " +
                                        std::to_string(m.second) +
                                        ") refers to a token id that is special or not defined yet");
        token_bytes_.push_back(token_bytes_[m.first] + token_bytes_[m.second]);
    }
    for (uint32_t id = kByteOffset; id < token_bytes_.size(); ++id) {
        bool inserted;
        token_id_.get_or_insert(token_bytes_[id], inserted) = id;
        if (!inserted)
            throw std::invalid_argument("merges define the same byte string twice (every token must be distinct)");
    }
    // Every way to split a token into two tokens is a pair that joins into it; this
    // turns "is bytes(x) + bytes(y) a token?" into one integer-keyed lookup.
    for (uint32_t id = kFirstMerge; id < token_bytes_.size(); ++id) {
        const std::string& t = token_bytes_[id];
        for (size_t k = 1; k < t.size(); ++k) {
            const uint32_t* left = token_id_.find(std::string_view(t.data(), k));
            if (!left) continue;
            const uint32_t* right = token_id_.find(std::string_view(t.data() + k, t.size() - k));
            if (right) pair_rank_[pair_key(*left, *right)] = id;
        }
    }
}

// Flat version: parts and the rank of each adjacent pair in two small arrays; each
// step finds the lowest rank by a scan (n < 64: cheaper than maintaining a heap).
void Encoder::merge_small(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const {
    uint32_t parts[kSmallPiece], ranks[kSmallPiece];
    for (size_t i = 0; i < n; ++i) parts[i] = p[i] + kByteOffset;
    for (size_t i = 0; i + 1 < n; ++i) ranks[i] = rank(parts[i], parts[i + 1]);
    size_t m = n;
    while (m > 1) {
        uint32_t best = kNoRank;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; ++i)
            if (ranks[i] < best) { best = ranks[i]; bi = i; }  // strict <: leftmost wins ties
        if (best == kNoRank) break;
        parts[bi] = best;  // a rank is the id of the joined token
        std::copy(parts + bi + 2, parts + m, parts + bi + 1);
        std::copy(ranks + bi + 1, ranks + m - 1, ranks + bi);
        --m;
        if (bi + 1 < m) ranks[bi] = rank(parts[bi], parts[bi + 1]);
        if (bi > 0) ranks[bi - 1] = rank(parts[bi - 1], parts[bi]);
    }
    out.insert(out.end(), parts, parts + m);
}

// Heap version for long pre-tokens (a 10k-space run): a doubly linked list of parts,
// keyed by their first byte position, and a min-heap of (rank, position) entries that
// are checked against the list when popped (lazy invalidation). Position order breaks
// rank ties leftmost, as in merge_small. O(n log n).
void Encoder::merge_large(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const {
    constexpr uint32_t kNone = 0xFFFFFFFFu;
    std::vector<uint32_t> id(n), next(n), prev(n);
    for (size_t i = 0; i < n; ++i) {
        id[i] = p[i] + kByteOffset;
        next[i] = i + 1 < n ? uint32_t(i + 1) : kNone;
        prev[i] = i > 0 ? uint32_t(i - 1) : kNone;
    }
    using Entry = std::pair<uint32_t, uint32_t>;  // (rank, left position)
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
    for (size_t i = 0; i + 1 < n; ++i) {
        const uint32_t r = rank(id[i], id[i + 1]);
        if (r != kNoRank) heap.push({r, uint32_t(i)});
    }
    while (!heap.empty()) {
        const auto [r, i] = heap.top();
        heap.pop();
        // stale if i was absorbed into its left neighbour, or its pair changed since
        if (id[i] == kNone || next[i] == kNone || rank(id[i], id[next[i]]) != r) continue;
        const uint32_t j = next[i];
        id[i] = r;
        id[j] = kNone;
        next[i] = next[j];
        if (next[j] != kNone) prev[next[j]] = i;
        if (prev[i] != kNone) {
            const uint32_t rl = rank(id[prev[i]], id[i]);
            if (rl != kNoRank) heap.push({rl, prev[i]});
        }
        if (next[i] != kNone) {
            const uint32_t rr = rank(id[i], id[next[i]]);
            if (rr != kNoRank) heap.push({rr, i});
        }
    }
    for (uint32_t i = 0; i != kNone; i = next[i]) out.push_back(id[i]);
}

void Encoder::encode_piece(const uint8_t* p, size_t n, std::vector<uint32_t>& out, Cache& cache) const {
    const uint64_t h = hash_bytes(p, n);
    if (const uint32_t* whole = token_id_.find(p, n, h)) {  // most pre-tokens are one token
        out.push_back(*whole);
        return;
    }
    if (n > kCachedPieceMax) {
        merge_large(p, n, out);
        return;
    }
    if (auto* hit = cache.index.find(p, n, h)) {
        out.insert(out.end(), cache.ids.begin() + hit->first, cache.ids.begin() + hit->first + hit->second);
        return;
    }
    const size_t start = out.size();
    if (n < kSmallPiece) merge_small(p, n, out);
    else merge_large(p, n, out);
    if (cache.index.size() >= kCacheEntries) {
        cache.index.clear();
        cache.ids.clear();
    }
    bool inserted;
    cache.index.get_or_insert(p, n, h, inserted) = {uint32_t(cache.ids.size()), uint32_t(out.size() - start)};
    cache.ids.insert(cache.ids.end(), out.begin() + start, out.end());
}

void Encoder::encode(const uint8_t* s, size_t n, unsigned allowed, std::vector<uint32_t>& out, Cache& cache) const {
    split_specials(
        s, n, allowed,
        [&](size_t a, size_t b) {
            const uint8_t* text = s + a;
            pretokenize(pattern_, text, b - a, [&](size_t x, size_t y) { encode_piece(text + x, y - x, out, cache); });
        },
        [&](uint32_t id) { out.push_back(id); });
}

namespace {

constexpr size_t kBlockBytes = 64 << 10;  // texts per scheduling unit: ~1 ms of work
constexpr size_t kBlockTexts = 1024;

// Run work(thread index) on `threads` threads, the calling one included.
template <class F>
void run_on_threads(size_t threads, F&& work) {
    std::vector<std::thread> pool;
    std::exception_ptr error;
    std::mutex mu;
    auto guarded = [&](size_t t) {
        try {
            work(t);
        } catch (...) {  // bad_alloc in a worker: rethrown on the calling thread
            std::lock_guard<std::mutex> lock(mu);
            if (!error) error = std::current_exception();
        }
    };
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(guarded, t);
    guarded(0);
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace

size_t Encoder::Batch::total() const {
    size_t n = 0;
    for (const auto& b : ids) n += b.size();
    return n;
}

Encoder::Batch Encoder::plan_batch(const std::vector<BatchText>& texts) {
    Batch batch;
    for (size_t i = 0, bytes = 0; i < texts.size(); ++i) {
        if (batch.first.empty() || bytes >= kBlockBytes || i - batch.first.back() >= kBlockTexts) {
            batch.first.push_back(i);
            bytes = 0;
        }
        bytes += texts[i].size * size_t(texts[i].width ? texts[i].width : 1);
    }
    const size_t n_blocks = batch.first.size();
    batch.first.push_back(texts.size());
    batch.ids.resize(n_blocks);
    batch.lengths.resize(n_blocks);
    return batch;
}

void Encoder::encode_block(Batch& batch, const std::vector<BatchText>& texts, size_t b, unsigned allowed,
                           Cache& cache, std::string& utf8) const {
    std::vector<uint32_t> ids, lengths;  // this block's, moved into the batch once at the end
    ids.reserve(kBlockBytes / 3);
    for (size_t i = batch.first[b]; i < batch.first[b + 1]; ++i) {
        const BatchText& t = texts[i];
        const uint8_t* s = static_cast<const uint8_t*>(t.data);
        size_t n = t.size;
        // a str that is not ASCII, or a paragraph that needs its "\n\n": UTF-8 made here, without the GIL
        if (t.width || t.nl2) {
            if (t.width)
                utf8_of_units(t.data, t.size, t.width, utf8);
            else
                utf8.assign(static_cast<const char*>(t.data), t.size);
            if (t.nl2) utf8 += "\n\n";
            s = reinterpret_cast<const uint8_t*>(utf8.data());
            n = utf8.size();
        }
        const size_t before = ids.size();
        encode(s, n, allowed, ids, cache);
        lengths.push_back(uint32_t(ids.size() - before));
    }
    batch.ids[b] = std::move(ids);
    batch.lengths[b] = std::move(lengths);
}

void Encoder::run_batch(Batch& batch, const std::vector<BatchText>& texts, unsigned allowed, int num_threads) const {
    const size_t n_blocks = batch.ids.size();
    std::atomic<size_t> next{0};
    const size_t threads = std::min<size_t>(std::max(1, num_threads), std::max<size_t>(1, n_blocks));
    run_on_threads(threads, [&](size_t) {
        Cache cache;
        std::string utf8;
        for (size_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < n_blocks;)
            encode_block(batch, texts, b, allowed, cache, utf8);
    });
}

Encoder::Batch Encoder::encode_batch(const std::vector<BatchText>& texts, unsigned allowed, int num_threads) const {
    Batch batch = plan_batch(texts);
    run_batch(batch, texts, allowed, num_threads);
    return batch;
}

void Encoder::paragraph_texts(const std::vector<BatchText>& texts, int num_threads, std::vector<BatchText>& docs,
                              std::vector<int64_t>& counts, std::vector<int64_t>& chars) {
    constexpr size_t kPieceUnits = size_t(1) << 18;
    struct Piece {
        size_t text, from, to;
    };
    std::vector<Piece> pieces;
    for (size_t i = 0; i < texts.size(); ++i) {
        const BatchText& t = texts[i];
        for (size_t p = 0; p < t.size;) {
            const size_t q = next_non_space(t.data, t.size, t.width, std::min(t.size, p + kPieceUnits));
            pieces.push_back({i, p, q});
            p = q;
        }
    }
    std::vector<std::vector<Span>> found(pieces.size());
    std::vector<size_t> piece_chars(pieces.size());  // characters of each piece (UTF-8: counted here, in parallel)
    std::atomic<size_t> next{0};
    run_on_threads(std::min<size_t>(std::max(1, num_threads), std::max<size_t>(1, pieces.size())), [&](size_t) {
        for (size_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < pieces.size();) {
            const Piece& pc = pieces[k];
            const BatchText& t = texts[pc.text];
            breaks(t.data, t.width, pc.from, pc.to, found[k]);
            piece_chars[k] = chars_between(t.data, t.width, pc.from, pc.to);
        }
    });
    counts.assign(texts.size(), 0);
    chars.assign(texts.size(), 0);
    std::vector<Span> br, spans;
    for (size_t i = 0, k = 0; i < texts.size(); ++i) {
        const BatchText& t = texts[i];
        br.clear();
        size_t text_chars = 0;
        for (; k < pieces.size() && pieces[k].text == i; ++k) {
            br.insert(br.end(), found[k].begin(), found[k].end());
            text_chars += piece_chars[k];
        }
        spans.clear();
        paragraphs_between(t.data, t.size, t.width, br, spans);
        const size_t unit = t.width > 1 ? size_t(t.width) : 1;
        // characters of the documents: the text's, less those between them (breaks, blank paragraphs:
        // whitespace, short), so that no thread walks the whole text again
        auto chars_of = [&](size_t a, size_t b) { return chars_between(t.data, t.width, a, b); };
        size_t prev = 0;
        for (const Span& sp : spans) {
            docs.push_back({static_cast<const char*>(t.data) + sp.begin * unit, sp.end - sp.begin, t.width, true});
            text_chars -= chars_of(prev, sp.begin);
            prev = sp.end;
        }
        text_chars -= chars_of(prev, t.size);
        chars[i] = int64_t(text_chars + 2 * spans.size());
        counts[i] = int64_t(spans.size());
    }
}

void Encoder::flatten(const Batch& batch, uint32_t* ids, int64_t* offsets, int num_threads) {
    const size_t n_blocks = batch.ids.size();
    std::vector<int64_t> start(n_blocks + 1, 0);  // where each block's ids go
    for (size_t b = 0; b < n_blocks; ++b) start[b + 1] = start[b] + int64_t(batch.ids[b].size());
    offsets[0] = 0;
    for (size_t b = 0; b < n_blocks; ++b) {
        int64_t at = start[b];
        for (size_t k = 0; k < batch.lengths[b].size(); ++k) offsets[batch.first[b] + k + 1] = at += batch.lengths[b][k];
    }
    std::atomic<size_t> next{0};
    const size_t threads = std::min<size_t>(std::max(1, num_threads), std::max<size_t>(1, n_blocks));
    run_on_threads(threads, [&](size_t) {
        for (size_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < n_blocks;)
            std::copy(batch.ids[b].begin(), batch.ids[b].end(), ids + start[b]);
    });
}

std::string Encoder::decode(const uint32_t* ids, size_t n) const {
    size_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        if (ids[i] >= token_bytes_.size())
            throw std::out_of_range("token id " + std::to_string(ids[i]) + " is out of range for vocab_size " +
                                    std::to_string(token_bytes_.size()));
        total += token_bytes_[ids[i]].size();
    }
    std::string out;
    out.reserve(total);
    for (size_t i = 0; i < n; ++i) out += token_bytes_[ids[i]];
    return out;
}

}  // namespace tinyllm
