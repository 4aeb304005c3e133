"""The one error type of :mod:`lptn.photo`."""

from __future__ import annotations


class PhotoError(ValueError):
    """A photo cannot be read, converted or written; the message says why in plain words and
    names the file when there is one."""
