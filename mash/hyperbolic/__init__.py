"""Hyperbolic hierarchy: Poincaré-ball maths and embeddings (geoopt), tree decoding, plots.

Parent-array tree algorithms are in :mod:`mash.trees`, node naming in :mod:`mash.naming`,
known groups in :mod:`mash.labels` and tree metrics in :mod:`mash.metrics`.
"""
