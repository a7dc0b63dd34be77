"""Hyperbolic hierarchy: Poincaré-ball embeddings (geoopt), tree decoding, naming, plots."""
