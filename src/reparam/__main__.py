"""``python -m reparam`` (and ``torchrun ... -m reparam``): the ``reparam`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
