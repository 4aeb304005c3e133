"""lptn-serve: a web page and an HTTP API for enhancing photos (optional extra ``serve``).

Modules: :mod:`~lptn.serve.command` (the ``lptn-serve`` command), :mod:`~lptn.serve.app`
(routes, API key, query checks), :mod:`~lptn.serve.limits` (the per-request limits),
:mod:`~lptn.serve.upload` (receiving bodies: upload slots, timeout, byte limit),
:mod:`~lptn.serve.http_protocol` (uvicorn's h11 protocol with a request-head timeout),
:mod:`~lptn.serve.work_queue` (bounded queue, the model thread, batching) and
:mod:`~lptn.serve.photo_adapter` (the server's side of :mod:`lptn.photo`: header probe, formats,
batching, previews). Decoding, enhancement and encoding are :mod:`lptn.photo`'s, as in
``lptn-enhance``.
Importing this package needs no web framework; the command checks for the extra.
"""
