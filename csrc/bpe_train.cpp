#include "bpe_train.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>

#include "paragraphs.h"
#include "specials.h"
#include "utf8.h"

namespace tinyllm {

namespace {

constexpr size_t kChunkBytes = 1 << 20;  // counting work unit; also the file read size

// First safe cut at or after `from` (see last_safe_cut), or n.
size_t next_safe_cut(const uint8_t* s, size_t n, size_t from) {
    for (size_t p = std::max<size_t>(from, 1); p < n; ++p)
        if (is_safe_cut(s, p)) return p;
    return n;
}

}  // namespace

Trainer::Trainer(Pattern pattern, int num_threads) : pattern_(pattern) {
    // each worker owns a count table; past 64 workers memory grows with no speed to gain
    const int n = std::min(64, std::max(1, num_threads));
    max_queue_ = 2 * size_t(n);
    counts_.reserve(n);
    for (int i = 0; i < n; ++i) counts_.emplace_back(1 << 12);
    for (int i = 0; i < n; ++i) threads_.emplace_back(&Trainer::worker, this, i);
}

Trainer::~Trainer() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    work_ready_.notify_all();
    for (auto& t : threads_) t.join();
}

void Trainer::submit(Chunk&& chunk) {
    std::unique_lock<std::mutex> lock(mu_);
    // bounded queue: the reader never runs more than a few chunks ahead of the counters
    work_taken_.wait(lock, [&] { return queue_.size() < max_queue_ || error_; });
    if (error_) std::rethrow_exception(error_);
    queue_.push_back(std::move(chunk));
    lock.unlock();
    work_ready_.notify_one();
}

void Trainer::wait_idle() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [&] { return (queue_.empty() && busy_ == 0) || error_; });
    if (error_) std::rethrow_exception(error_);
}

void Trainer::worker(int index) {
    while (true) {
        Chunk chunk;
        {
            std::unique_lock<std::mutex> lock(mu_);
            work_ready_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (stop_) return;
            chunk = std::move(queue_.front());
            queue_.pop_front();
            ++busy_;
        }
        work_taken_.notify_one();
        try {
            count_chunk(chunk, counts_[index]);
        } catch (...) {  // bad_alloc: hand it to whoever waits
            std::lock_guard<std::mutex> lock(mu_);
            error_ = std::current_exception();
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            --busy_;
        }
        idle_.notify_all();
        work_taken_.notify_all();
    }
}

void Trainer::count_chunk(const Chunk& chunk, BytesMap<int64_t>& counts) const {
    const uint8_t* base = reinterpret_cast<const uint8_t*>(chunk.data.data());
    size_t begin = 0;
    for (size_t end : chunk.ends) {
        const uint8_t* doc = base + begin;
        // special tokens are cut out and never learned
        split_specials(
            doc, end - begin, (1u << kNumSpecials) - 1,
            [&](size_t a, size_t b) {
                const uint8_t* text = doc + a;
                pretokenize(pattern_, text, b - a, [&](size_t x, size_t y) {
                    bool inserted;
                    counts.get_or_insert(text + x, y - x, hash_bytes(text + x, y - x), inserted) += 1;
                });
            },
            [](uint32_t) {});
        begin = end;
    }
}

// Documents gathered into chunks of about kChunkBytes; a document over two chunks' worth is cut at
// safe cuts so that all threads get a share of it (its suffix goes on its last piece).
class Trainer::Chunker {
  public:
    explicit Chunker(Trainer& t) : t_(t) {}
    void add(std::string_view doc, std::string_view suffix = {}) {
        const uint8_t* s = reinterpret_cast<const uint8_t*>(doc.data());
        size_t pos = 0;
        while (doc.size() - pos > 2 * kChunkBytes) {
            size_t cut = last_safe_cut(s + pos, kChunkBytes);
            cut = cut ? pos + cut : next_safe_cut(s, doc.size(), pos + kChunkBytes);
            if (cut >= doc.size()) break;
            flush();
            chunk_.data.assign(doc.substr(pos, cut - pos));
            chunk_.ends.push_back(chunk_.data.size());
            flush();
            pos = cut;
        }
        chunk_.data.append(doc.substr(pos));
        chunk_.data.append(suffix);
        chunk_.ends.push_back(chunk_.data.size());
        if (chunk_.data.size() >= kChunkBytes) flush();
    }
    void flush() {
        if (!chunk_.ends.empty()) t_.submit(std::move(chunk_));
        chunk_ = Chunk();
    }

  private:
    Trainer& t_;
    Chunk chunk_;
};

void Trainer::add_texts(const std::vector<std::string_view>& texts, bool wait) {
    Chunker chunks(*this);
    for (const std::string_view t : texts) {
        bytes_read_.fetch_add(t.size(), std::memory_order_relaxed);
        chunks.add(t);
    }
    chunks.flush();
    if (wait) wait_idle();
}

void Trainer::add_paragraphs(const std::vector<std::string_view>& texts, bool wait, bool open_end) {
    Chunker chunks(*this);
    std::vector<Span> spans;
    for (size_t i = 0; i < texts.size(); ++i) {
        const std::string_view t = texts[i];
        bytes_read_.fetch_add(t.size(), std::memory_order_relaxed);
        spans.clear();
        paragraphs(t.data(), t.size(), 0, spans);  // (width 0: UTF-8)
        const bool open = open_end && i + 1 == texts.size();
        for (size_t k = 0; k < spans.size(); ++k)
            chunks.add(t.substr(spans[k].begin, spans[k].end - spans[k].begin),
                       open && k + 1 == spans.size() ? "" : "\n\n");
    }
    chunks.flush();
    if (wait) wait_idle();
}

Trainer::FileStats Trainer::add_file(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error("cannot read corpus file " + path + ": " + std::strerror(errno));
    std::vector<char> block(kChunkBytes);
    Stream stream;
    try {
        while (true) {
            const size_t got = std::fread(block.data(), 1, block.size(), f);
            if (got < block.size() && std::ferror(f))
                throw std::runtime_error("cannot read corpus file " + path + ": " + std::strerror(errno));
            const bool eof = got < block.size();
            feed(stream, block.data(), got, eof);
            if (eof) break;
        }
    } catch (...) {
        std::fclose(f);
        throw;
    }
    std::fclose(f);
    wait_idle();
    return stream.stats;
}

void Trainer::feed(Stream& st, const char* data, size_t n, bool final, bool repair) {
    st.stats.bytes += n;
    bytes_read_.fetch_add(n, std::memory_order_relaxed);
    if (repair || !st.pending.empty()) {
        repair_utf8_block(st.pending, data, n, final, st.text, st.stats.replaced);
    } else {
        st.text.append(data, n);
    }
    const uint8_t* s = reinterpret_cast<const uint8_t*>(st.text.data());
    const size_t size = st.text.size();
    size_t pos = 0;
    // submit chunks of about kChunkBytes, each ending at a safe cut, while over two chunks' worth
    // is held (one stays back: the next feed may extend its last pre-token)
    while (size - pos >= 2 * kChunkBytes) {
        size_t cut = last_safe_cut(s + pos, kChunkBytes);
        if (cut) {
            cut += pos;
        } else {  // no cut in the next chunk's worth: the first one after it, if any yet
            cut = next_safe_cut(s, size, std::max(pos + kChunkBytes, st.searched));
            if (cut >= size) {
                st.searched = size;
                break;
            }
        }
        Chunk chunk;
        chunk.data.assign(st.text, pos, cut - pos);
        chunk.ends.push_back(chunk.data.size());
        submit(std::move(chunk));
        pos = cut;
    }
    if (pos) {
        st.text.erase(0, pos);
        st.searched = st.searched > pos ? st.searched - pos : 0;
    }
    if (final && !st.text.empty()) {
        Chunk chunk;
        chunk.ends.push_back(st.text.size());
        chunk.data = std::move(st.text);
        st.text.clear();
        st.searched = 0;
        submit(std::move(chunk));
    }
}

BytesMap<int64_t>& Trainer::merged_counts() {
    wait_idle();
    // Fold every worker's table into counts_[0] and empty it, on every call: workers
    // keep counting into their own tables after an earlier fold, and folding an empty
    // table is a no-op.
    for (size_t i = 1; i < counts_.size(); ++i) {
        counts_[i].for_each([&](std::string_view k, int64_t v) {
            bool inserted;
            counts_[0].get_or_insert(k, inserted) += v;
        });
        counts_[i] = BytesMap<int64_t>(16);
    }
    return counts_[0];
}

std::vector<std::pair<std::string, int64_t>> Trainer::pretoken_counts() {
    std::vector<std::pair<std::string, int64_t>> out;
    merged_counts().for_each([&](std::string_view k, int64_t v) { out.emplace_back(std::string(k), v); });
    return out;
}

size_t Trainer::num_pretokens() { return merged_counts().size(); }

// Merge learning
// ------------------------------------------------------------------------------------
namespace {

// Words live back to back in one uint32 array, each as a 3-slot header then its ids:
//   [length, count low 32 bits, count high 32 bits, id, id, ...]
// A word is named by the offset of its header. Merging a frequent pair visits ~10^5
// words in random order; header and ids sharing cache lines halves the misses.
constexpr uint32_t kWordHeader = 3;

// Offsets of the words that may contain a pair (stale entries are allowed and
// skipped). Most pairs live in one or two words, so up to two indices are stored
// inline and only longer lists allocate: this keeps a pair's record at 24 bytes.
class WordList {
  public:
    WordList() : size_(0), cap_(kInline) {}
    ~WordList() { release(); }
    WordList(const WordList&) = delete;
    WordList& operator=(const WordList&) = delete;

    uint32_t size() const { return size_; }
    uint32_t back() const { return data()[size_ - 1]; }
    const uint32_t* data() const { return cap_ == kInline ? inline_ : heap_; }

    void push_back(uint32_t w) {
        if (size_ == cap_) grow();
        (cap_ == kInline ? inline_ : heap_)[size_++] = w;
    }
    // Move the indices out (sorted, unique) and free the storage.
    void take(std::vector<uint32_t>& out) {
        out.assign(data(), data() + size_);
        release();
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
    }

  private:
    static constexpr uint32_t kInline = 2;
    void grow() {
        const uint32_t cap = cap_ * 2;
        uint32_t* p = static_cast<uint32_t*>(std::malloc(sizeof(uint32_t) * cap));
        if (!p) throw std::bad_alloc();
        std::memcpy(p, data(), sizeof(uint32_t) * size_);
        if (cap_ != kInline) std::free(heap_);
        heap_ = p;
        cap_ = cap;
    }
    void release() {
        if (cap_ != kInline) std::free(heap_);
        size_ = 0;
        cap_ = kInline;
    }
    uint32_t size_, cap_;
    union {
        uint32_t inline_[kInline];
        uint32_t* heap_;
    };
};

struct PairInfo {
    int64_t count = 0;
    WordList words;
};

// Append-only array in fixed blocks: growing never copies (nor doubles) the records.
template <class T>
class BlockArray {
  public:
    static constexpr size_t kBits = 15;
    T& operator[](size_t i) { return blocks_[i >> kBits][i & ((size_t(1) << kBits) - 1)]; }
    size_t size() const { return size_; }
    size_t emplace_back() {
        if ((size_ >> kBits) == blocks_.size()) blocks_.emplace_back(new T[size_t(1) << kBits]);
        return size_++;
    }

  private:
    std::vector<std::unique_ptr<T[]>> blocks_;
    size_t size_ = 0;
};

struct HeapEntry {
    int64_t count;
    uint32_t a, b;
};

// std::*_heap keep the "largest" on top: the largest count, then the smallest (a, b).
// This is the tie-break rule of reference.py: ties go to the smallest (left, right).
struct HeapLess {
    bool operator()(const HeapEntry& x, const HeapEntry& y) const {
        if (x.count != y.count) return x.count < y.count;
        if (x.a != y.a) return x.a > y.a;
        return x.b > y.b;
    }
};

// Pair-count changes of one merge step, summed before they touch the global tables:
// merging a frequent pair rewrites ~10^5 words but changes only ~10^2 distinct pairs,
// and this small table stays in cache. Slots from earlier steps count as empty
// (`step` stamps), so starting a step costs nothing.
class StepDeltas {
  public:
    struct Slot {
        uint64_t key;
        uint64_t step = 0;
        int64_t delta;
        uint32_t pair;  // global pair index, or kUnresolved
        bool grew;      // got an increment: needs a fresh heap entry
    };
    static constexpr uint32_t kUnresolved = 0xFFFFFFFFu;

    StepDeltas() : slots_(1 << 10) {}
    void next_step() {
        ++step_;
        used_.clear();
    }
    Slot& at(uint64_t key) {
        if (used_.size() * 2 >= slots_.size()) grow();
        size_t i = hash_u64(key) & (slots_.size() - 1);
        while (slots_[i].step == step_) {
            if (slots_[i].key == key) return slots_[i];
            i = (i + 1) & (slots_.size() - 1);
        }
        slots_[i] = Slot{key, step_, 0, kUnresolved, false};
        used_.push_back(uint32_t(i));
        return slots_[i];
    }
    template <class F>
    void for_each(F&& f) {
        for (uint32_t i : used_) f(slots_[i]);
    }

  private:
    void grow() {
        std::vector<Slot> old(slots_.size() * 2);
        old.swap(slots_);
        std::vector<uint32_t> old_used;
        old_used.swap(used_);
        for (uint32_t i : old_used) {
            size_t j = hash_u64(old[i].key) & (slots_.size() - 1);
            while (slots_[j].step == step_) j = (j + 1) & (slots_.size() - 1);
            slots_[j] = old[i];
            used_.push_back(uint32_t(j));
        }
    }
    std::vector<Slot> slots_;
    std::vector<uint32_t> used_;
    uint64_t step_ = 1;
};

class MergeLearner {
  public:
    MergeLearner(BytesMap<int64_t>& counts, std::atomic<uint64_t>& progress) : progress_(progress) {
        const size_t total = counts.arena_bytes() + kWordHeader * counts.size();
        if (total >= 0xFFFFFFFFull) throw std::length_error("too many distinct pre-tokens for 32-bit word offsets");
        store_.reserve(total);
        counts.for_each([&](std::string_view piece, int64_t c) {
            store_.push_back(static_cast<uint32_t>(piece.size()));
            store_.push_back(static_cast<uint32_t>(uint64_t(c)));
            store_.push_back(static_cast<uint32_t>(uint64_t(c) >> 32));
            for (unsigned char ch : piece) store_.push_back(ch + kByteOffset);
        });
        counts = BytesMap<int64_t>(16);  // the words hold everything now; free the table

        for (uint32_t i = 0; i < kByteOffset; ++i) token_bytes_.emplace_back();
        for (int b = 0; b < 256; ++b) {
            token_bytes_.emplace_back(1, static_cast<char>(b));
            bool inserted;
            id_of_bytes_.get_or_insert(token_bytes_.back(), inserted) = kByteOffset + b;
        }

        for (uint32_t w = 0; w < store_.size(); w += kWordHeader + store_[w]) {
            const uint32_t* p = &store_[w + kWordHeader];
            const int64_t c = word_count(w);
            for (uint32_t i = 0; i + 1 < store_[w]; ++i) {
                PairInfo& info = pairs_[pair_index(p[i], p[i + 1])];
                info.count += c;
                if (info.words.size() == 0 || info.words.back() != w) info.words.push_back(w);
            }
        }
        heap_.reserve(pairs_.size() * 3 / 2);
        index_.for_each([&](uint64_t key, uint32_t idx) {
            if (pairs_[idx].count > 0) heap_.push_back({pairs_[idx].count, uint32_t(key >> 32), uint32_t(key)});
        });
        std::make_heap(heap_.begin(), heap_.end(), HeapLess());
    }

    std::vector<Merge> run(size_t n_merges) {
        std::vector<Merge> merges;
        while (merges.size() < n_merges && !heap_.empty()) {
            std::pop_heap(heap_.begin(), heap_.end(), HeapLess());
            const HeapEntry top = heap_.back();
            heap_.pop_back();
            const uint32_t idx = *index_.find(pair_key(top.a, top.b));
            const int64_t current = pairs_[idx].count;
            if (current != top.count) {  // stale: requeue with the current count
                if (current > 0) push(top.a, top.b, current);
                continue;
            }
            std::string joined = token_bytes_[top.a] + token_bytes_[top.b];
            bool inserted;
            uint32_t& slot = id_of_bytes_.get_or_insert(joined, inserted);
            if (inserted) {  // a new token; otherwise an alias merge into the existing one
                slot = static_cast<uint32_t>(token_bytes_.size());
                token_bytes_.push_back(std::move(joined));
                merges.emplace_back(top.a, top.b);
                progress_.fetch_add(1, std::memory_order_relaxed);
            }
            apply(top.a, top.b, slot, idx);
        }
        return merges;
    }

  private:
    // Index of the pair's record, created on first sight.
    uint32_t pair_index(uint32_t a, uint32_t b) {
        bool inserted;
        uint32_t& idx = index_.get_or_insert(pair_key(a, b), inserted);
        if (inserted) idx = static_cast<uint32_t>(pairs_.emplace_back());
        return idx;
    }

    void push(uint32_t a, uint32_t b, int64_t count) {
        heap_.push_back({count, a, b});
        std::push_heap(heap_.begin(), heap_.end(), HeapLess());
    }

    void dec(uint32_t a, uint32_t b, int64_t c) { deltas_.at(pair_key(a, b)).delta -= c; }

    void inc(uint32_t a, uint32_t b, int64_t c, uint32_t word) {
        StepDeltas::Slot& s = deltas_.at(pair_key(a, b));
        s.delta += c;
        s.grew = true;
        if (s.pair == StepDeltas::kUnresolved) s.pair = pair_index(a, b);
        WordList& words = pairs_[s.pair].words;
        if (words.size() == 0 || words.back() != word) words.push_back(word);
    }

    // Rewrite every word holding (a, b) to use z, recording only the pair-count changes
    // next to each replaced occurrence. Worked example, word a b a b -> z z:
    //   occurrence 1: -(a,b)          -(b,a) +(z,a)   (the right neighbour is a)
    //   occurrence 2: -(a,b) -(z,a) +(z,z)            (the left neighbour is now z)
    // leaving -2(a,b) -(b,a) +(z,z), exactly the difference between the two words.
    void apply(uint32_t a, uint32_t b, uint32_t z, uint32_t idx) {
        deltas_.next_step();
        pairs_[idx].words.take(affected_);
        constexpr size_t kAhead = 8;  // prefetch distance: the visits are cache misses otherwise
        for (size_t k = 0; k < affected_.size(); ++k) {
            if (k + kAhead < affected_.size()) __builtin_prefetch(&store_[affected_[k + kAhead]]);
            const uint32_t w = affected_[k];
            uint32_t* p = &store_[w + kWordHeader];
            const uint32_t n = store_[w];
            const int64_t c = word_count(w);
            uint32_t r = 0, out = 0;
            while (r < n) {
                if (r + 1 < n && p[r] == a && p[r + 1] == b) {
                    dec(a, b, c);
                    if (out > 0) {
                        dec(p[out - 1], a, c);
                        inc(p[out - 1], z, c, w);
                    }
                    if (r + 2 < n) {
                        dec(b, p[r + 2], c);
                        inc(z, p[r + 2], c, w);
                    }
                    p[out++] = z;  // out <= r: the read position is never overwritten early
                    r += 2;
                } else {
                    p[out++] = p[r++];
                }
            }
            store_[w] = out;
        }
        // Apply the summed changes. Pairs that only lost count keep their (now too
        // high) heap entries until popped; pairs that grew need a fresh entry now.
        deltas_.for_each([&](StepDeltas::Slot& s) {
            if (s.pair == StepDeltas::kUnresolved) s.pair = *index_.find(s.key);
            PairInfo& info = pairs_[s.pair];
            info.count += s.delta;
            if (s.grew && info.count > 0) push(uint32_t(s.key >> 32), uint32_t(s.key), info.count);
        });
    }

    std::atomic<uint64_t>& progress_;
    int64_t word_count(uint32_t w) const { return int64_t(uint64_t(store_[w + 1]) | (uint64_t(store_[w + 2]) << 32)); }

    std::vector<uint32_t> store_;  // the words (layout above)
    U64Map<uint32_t> index_{1 << 16};  // pair key -> index in pairs_
    BlockArray<PairInfo> pairs_;
    std::vector<HeapEntry> heap_;
    std::vector<std::string> token_bytes_;
    BytesMap<uint32_t> id_of_bytes_{1 << 16};
    StepDeltas deltas_;
    std::vector<uint32_t> affected_;
};

}  // namespace

std::vector<Merge> Trainer::train(size_t n_merges) {
    MergeLearner learner(merged_counts(), merges_done_);
    return learner.run(n_merges);
}

}  // namespace tinyllm
