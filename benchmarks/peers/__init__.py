"""The systems a physicist would otherwise use, on the same files: RDataFrame and coffea."""
