"""Compiled (numba) loops for what columnar code does with padded tables and combinations.

Each kernel walks one chunk event by event over offsets and flat values, in the order the
columnar code it replaced used, with the same float32 arithmetic, so that histograms stay
identical bin for bin; the tests compare every kernel with that previous code.
"""
