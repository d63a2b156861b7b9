"""``python -m xai_core.cli`` (what ``torchrun -m xai_core.cli run ...`` starts on each rank)."""

import sys

from xai_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
