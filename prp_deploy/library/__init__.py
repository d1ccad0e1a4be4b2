"""The video library: embeddings of an exported model in Parquet, searched with FAISS (the `search` extra)."""

from .library import AddReport, Hit, IndexOptions, Library, parse_query

__all__ = ["AddReport", "Hit", "IndexOptions", "Library", "parse_query"]
