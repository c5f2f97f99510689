#!/usr/bin/env python3
# Owns the command line of the real-driver client matrix; the cases live in clientmatrix/.
"""python3 tests/clients/matrix.py --host H --port P --user U --password PW --dbname D
[--only NAME,...] [--mode session|transaction|split] [--timeout 20] [--list]"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clientmatrix.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
