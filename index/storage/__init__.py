"""The storage seam: the parts an index is made of, each behind its own interface.

- `documents.py`: the document store (SQLite): documents, chunks, sentences and their vectors, the source
  of truth; transactions, the generation counter and the log of removed ids; filters; the write lock.
- `vectors.py`: `VectorIndex`, top-k inner-product search over vectors keyed by ids, and its FAISS
  implementation (flat or HNSW, chosen by size).
- `keywords.py`: `KeywordIndex`, BM25 posting lists kept in the document store's database.

`index.store.IndexStore` composes them into the local backend; ranking never happens here (index.search).
"""
