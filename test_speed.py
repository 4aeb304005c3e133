"""Measure inference speed: ``python test_speed.py -opt options/test/LPTN/test_speed_FiveK.yml``."""

from lptn.engine.cli import speed_main

if __name__ == "__main__":
    raise SystemExit(speed_main())
