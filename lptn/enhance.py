"""``python -m lptn.enhance``: the same as the ``lptn-enhance`` command."""

from lptn.engine.cli import enhance_main

if __name__ == "__main__":
    raise SystemExit(enhance_main())
