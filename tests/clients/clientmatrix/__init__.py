# Owns nothing but the package marker of the client matrix (see runner.py).
