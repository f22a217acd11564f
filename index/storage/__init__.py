"""The storage seam: documents, vectors and keywords, each behind its own interface."""
