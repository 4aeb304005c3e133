"""Train a model: ``python train.py -opt options/train/LPTN/train_FiveK.yml [--auto_resume]``."""

from lptn.engine.cli import train_main

if __name__ == "__main__":
    raise SystemExit(train_main())
