// BPE encoding by rank (the tiktoken rule, see tinyllm/tokenizer/reference.py):
// a pre-token that is a token encodes to it; otherwise start from its bytes and keep
// joining the adjacent pair whose joined bytes are the lowest-id token (leftmost on
// ties) until no adjacent pair joins into a token.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bpe_train.h"
#include "flat_map.h"
#include "pretokenize.h"

namespace tinyllm {

class Encoder {
  public:
    // merges[i] = (left, right) made token 260 + i. Throws std::invalid_argument if a
    // merge refers to an undefined id or repeats a byte string.
    Encoder(const std::vector<Merge>& merges, Pattern pattern);

    // Per-thread memo of pre-token -> ids for pre-tokens that are not single tokens.
    struct Cache {
        BytesMap<std::pair<uint32_t, uint32_t>> index{1 << 10};  // -> (offset, length) in ids
        std::vector<uint32_t> ids;
    };

    // Append the ids of s[0..n) to out. `allowed` is a bit mask of special ids that are
    // recognised in the text; other special names are ordinary text.
    void encode(const uint8_t* s, size_t n, unsigned allowed, std::vector<uint32_t>& out, Cache& cache) const;

    // One text of a batch: UTF-8 bytes (width 0), or code units of width 1, 2 or 4 bytes
    // (CPython's str storage) that the worker turns into UTF-8 itself, so that the caller,
    // who holds the GIL, does no per-character work.
    struct BatchText {
        const void* data;
        size_t size;  // bytes (width 0) or code units
        int width;
        bool nl2 = false;  // the text is data followed by "\n\n" (a paragraph as a document: paragraphs.h)
    };
    // A batch's ids, in blocks of consecutive texts: block b holds texts [first[b], first[b+1])
    // back to back in ids[b], text k's length in lengths[b][k - first[b]]. Each block is one
    // worker's output, written once: no two threads write the same cache line per id.
    struct Batch {
        std::vector<size_t> first;
        std::vector<std::vector<uint32_t>> ids, lengths;
        size_t total() const;
    };

    // Encode many texts on up to num_threads threads. Texts are grouped into blocks of about
    // kBlockBytes that the threads take in turn, lowest first (dynamic scheduling: big and
    // small documents mix well); each thread keeps one memo for all its blocks.
    Batch encode_batch(const std::vector<BatchText>& texts, unsigned allowed, int num_threads) const;
    // The same in steps: plan_batch cuts the texts into blocks, encode_block encodes block b into
    // batch.ids[b] / batch.lengths[b] (utf8: the thread's scratch string), run_batch all blocks on
    // up to num_threads threads. A caller that schedules the blocks itself (the Python lists of
    // encode_batch: bindings.cpp) calls encode_block from its own threads.
    static Batch plan_batch(const std::vector<BatchText>& texts);
    void encode_block(Batch& batch, const std::vector<BatchText>& texts, size_t b, unsigned allowed, Cache& cache,
                      std::string& utf8) const;
    void run_batch(Batch& batch, const std::vector<BatchText>& texts, unsigned allowed, int num_threads) const;

    // The documents of whole texts (csrc/paragraphs.h: each paragraph + "\n\n") as texts of a batch,
    // with counts[i] documents of text i and chars[i] characters in them. The breaks are found on up
    // to num_threads threads, each text cut into pieces of kPieceUnits at characters that are not
    // whitespace (no break straddles one); the texts must outlive the documents.
    static void paragraph_texts(const std::vector<BatchText>& texts, int num_threads, std::vector<BatchText>& docs,
                                std::vector<int64_t>& counts, std::vector<int64_t>& chars);

    // The batch's ids in one array, and offsets (n + 1) such that text i is ids[offsets[i],
    // offsets[i+1]); blocks are copied in parallel on num_threads threads.
    static void flatten(const Batch& batch, uint32_t* ids, int64_t* offsets, int num_threads);

    // Bytes of the ids (special ids give their names); throws std::out_of_range.
    std::string decode(const uint32_t* ids, size_t n) const;

    size_t vocab_size() const { return token_bytes_.size(); }
    const std::vector<std::string>& token_bytes() const { return token_bytes_; }  // id -> bytes

  private:
    void encode_piece(const uint8_t* p, size_t n, std::vector<uint32_t>& out, Cache& cache) const;
    void merge_small(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const;
    void merge_large(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const;
    uint32_t rank(uint32_t a, uint32_t b) const {
        const uint32_t* r = pair_rank_.find(pair_key(a, b));
        return r ? *r : kNoRank;
    }

    static constexpr uint32_t kNoRank = 0xFFFFFFFFu;
    Pattern pattern_;
    std::vector<std::string> token_bytes_;  // id -> bytes
    BytesMap<uint32_t> token_id_;           // bytes -> id, non-special tokens
    U64Map<uint32_t> pair_rank_;            // (x, y) -> id of bytes(x) + bytes(y), when a token
};

}  // namespace tinyllm
