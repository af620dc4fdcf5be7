"""Catalog, embeddings, the Chroma product store, query understanding and ranking."""
