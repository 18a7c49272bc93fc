"""Build tooling for the shipped model files: pretraining, corpora, token caches, n-gram counts, the count prior,
gradient statistics and the replay text. The runtime never imports it.
"""
