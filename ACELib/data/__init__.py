"""Data: the dataset contract, checks, preprocessing, loading and balanced sampling."""
