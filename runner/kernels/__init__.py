"""Kernels: the Debian ABIs the posts run on, Debian's source, and the kernels posts build."""
