#!/usr/bin/env python3
# Owns the command line of the real-client Redis matrix; the cases live in redismatrix/.
"""python3 tests/clients/redis_matrix.py --host H --port P [--password PW]
[--only NAME,...] [--skip NAME,...] [--timeout 20] [--list] [-v]"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from redismatrix.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
