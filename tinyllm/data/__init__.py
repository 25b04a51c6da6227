"""Data: text corpora, Q&A JSON, token files and shards, and TinyLLM's entry points.
Names load lazily (tinyllm.lazy_exports): `tinyllm tokenizer train` reads corpora without torch."""

from .. import lazy_exports

__all__ = [
    "prepare_custom_data",
    "create_dataloader",
    "load_qa",
    "QAPair",
    "format_prompt",
    "demo_qa_path",
    "DEMO_QA",
    "TokenDataset",
    "PackedQADataset",
    "Corpus",
    "load_corpus",
    "load_documents",
    "bible_verses",
    "build_token_files",
    "split_documents",
    "unigram_entropy",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "prepare_custom_data": ".tinyllm_compat",
        "create_dataloader": ".tinyllm_compat",
        "load_qa": ".qa",
        "QAPair": ".qa",
        "format_prompt": ".qa",
        "demo_qa_path": ".qa",
        "DEMO_QA": ".qa",
        "TokenDataset": ".tokens",
        "build_token_files": ".tokens",
        "unigram_entropy": ".tokens",
        "PackedQADataset": ".packed",
        "Corpus": ".corpus",
        "load_corpus": ".corpus",
        "load_documents": ".corpus",
        "bible_verses": ".corpus",
        "split_documents": ".corpus",
    },
)
