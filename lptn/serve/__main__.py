"""``python -m lptn.serve``: the same as the ``lptn-serve`` command."""

from lptn.serve.command import serve_main

if __name__ == "__main__":
    raise SystemExit(serve_main())
