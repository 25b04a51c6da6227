#!/usr/bin/env python
"""TinyLLM's entry point, kept so its commands work unchanged:

    python train.py --batch_size 32 --max_iters 5000 --d_model 512 --n_layers 8
    torchrun --nproc_per_node=2 train.py --batch_size 32 --max_iters 5000 --d_model 512 --n_layers 8

is `tinyllm train ...` (or `torchrun --nproc_per_node=2 -m tinyllm train ...`) with the same flags.
"""

import sys

from tinyllm.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
