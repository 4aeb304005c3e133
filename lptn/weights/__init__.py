"""Weights that ship inside the package (package data, checked by sha256 when used)."""
