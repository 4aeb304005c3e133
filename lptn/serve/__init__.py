"""lptn-serve: a web page and an HTTP API for enhancing photos (optional extra ``serve``).

Modules: :mod:`~lptn.serve.command` (the ``lptn-serve`` command), :mod:`~lptn.serve.app`
(routes), :mod:`~lptn.serve.work_queue` (bounded queue, the model thread, batching) and
:mod:`~lptn.serve.photo_adapter` (all image decoding, enhancement and encoding).
Importing this package needs no web framework; the command checks for the extra.
"""
