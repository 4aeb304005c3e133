"""Evaluate a generator: ``python test.py -opt options/test/LPTN/test_FiveK.yml``."""

from lptn.engine.cli import evaluate_main

if __name__ == "__main__":
    raise SystemExit(evaluate_main())
