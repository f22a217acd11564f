"""Baseline retrievers to compare CiteQA with (optional extra `[peers]`; product code never imports this).

- `langchain_peer`: LangChain FAISS + HuggingFaceEmbeddings on the same embedded model, as tutorials build it,
  and a variant tuned for Chinese.
- `bm25_peer`: jieba + bm25s over the same 500/50 chunks.
- `reference`: builds all three on a corpus and reproduces the reference figures
  (`python -m eval.peers.reference`).
"""
