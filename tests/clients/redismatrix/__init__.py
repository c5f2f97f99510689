# Owns nothing but the package marker of the Redis client matrix (see runner.py).
