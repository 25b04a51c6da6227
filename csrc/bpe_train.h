// BPE training: count pre-tokens on a pool of threads, then learn merges with
// incrementally updated pair counts and a lazily invalidated max-heap.
// The algorithm, the tie-break and the alias rule are spelled out in
// tinyllm/tokenizer/reference.py; this is the same algorithm, made fast.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "flat_map.h"
#include "pretokenize.h"

namespace tinyllm {

using Merge = std::pair<uint32_t, uint32_t>;

class Trainer {
  public:
    // num_threads counting workers (1..64); the caller's thread reads files.
    Trainer(Pattern pattern, int num_threads);
    ~Trainer();
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    // Count the pre-tokens of in-memory texts (UTF-8; each text is its own document).
    // The texts are copied into work chunks; they need to live only for the call. With
    // wait=false the call returns once its chunks are queued (the bounded queue still holds
    // the caller back), so a reader can parse the next texts while the workers count these.
    void add_texts(const std::vector<std::string_view>& texts, bool wait = true);

    // Count the documents tinyllm.data.corpus cuts from texts whose paragraphs are complete (valid
    // UTF-8, newlines "\n"): each paragraph between blank lines that is not blank, + "\n\n", its own
    // document (paragraphs.h). What `tinyllm tokenizer train` streams: a corpus's blocks, cut here
    // without the GIL rather than into a Python string per document. wait as in add_texts.
    // open_end: the last text ends inside its last paragraph, which the next call's first text goes
    // on with (cut before a space that follows a letter: a pre-token boundary, so the pieces count as
    // the whole); that piece gets no "\n\n". A paragraph longer than any read streams so.
    void add_paragraphs(const std::vector<std::string_view>& texts, bool wait = true, bool open_end = false);

    struct FileStats {
        uint64_t bytes = 0;     // bytes read
        uint64_t replaced = 0;  // invalid UTF-8 sequences read as U+FFFD
    };
    // Stream a file; throws std::runtime_error("cannot read corpus file ...") on I/O errors.
    FileStats add_file(const std::string& path);

    // A byte stream fed in pieces (add_file's reader, or a caller's: decompressed text,
    // Parquet values): invalid UTF-8 repaired and counted, cut at safe cuts into chunks.
    struct Stream {
        std::string pending;  // raw bytes not yet repaired: an incomplete UTF-8 sequence
        std::string text;     // repaired text after the last cut, not yet submitted
        size_t searched = 0;  // text[0..searched) holds no safe cut
        FileStats stats;
    };
    // Feed data[0..n) to the stream; final = the stream ends here (what is held is submitted).
    // Returns once the chunks are queued: the caller may read on while the workers count.
    // repair = false: data is text already (valid UTF-8, or a str's surrogatepass bytes, which
    // add_texts would count as they are), appended unchanged; it must not end mid-character.
    void feed(Stream& stream, const char* data, size_t n, bool final, bool repair = true);

    // Learn up to n_merges merges from everything added so far (left id, right id).
    // Consumes the counts: call it once, after the last add_*.
    std::vector<Merge> train(size_t n_merges);

    // Distinct pre-tokens and their counts (waits for pending counting first).
    std::vector<std::pair<std::string, int64_t>> pretoken_counts();
    size_t num_pretokens();

    uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }
    uint64_t merges_done() const { return merges_done_.load(std::memory_order_relaxed); }

  private:
    // A unit of counting work: documents back to back; doc k is data[ends[k-1], ends[k]).
    struct Chunk {
        std::string data;
        std::vector<size_t> ends;
    };

    class Chunker;  // documents -> chunks (bpe_train.cpp)
    void submit(Chunk&& chunk);
    void wait_idle();
    void worker(int index);
    void count_chunk(const Chunk& chunk, BytesMap<int64_t>& counts) const;
    BytesMap<int64_t>& merged_counts();

    Pattern pattern_;
    std::vector<std::thread> threads_;
    std::vector<BytesMap<int64_t>> counts_;  // one per worker, folded into counts_[0] when read
    std::deque<Chunk> queue_;
    std::mutex mu_;
    std::condition_variable work_ready_, work_taken_, idle_;
    size_t busy_ = 0, max_queue_;
    bool stop_ = false;
    std::exception_ptr error_;
    std::atomic<uint64_t> bytes_read_{0}, merges_done_{0};
};

}  // namespace tinyllm
