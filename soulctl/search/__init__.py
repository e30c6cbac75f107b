"""Search shared by the log and the corpora: vectors (FAISS), keywords (tantivy BM25) and
their fusion by reciprocal rank."""
