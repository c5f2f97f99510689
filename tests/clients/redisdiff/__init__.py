# Owns nothing but the package marker of the Redis differential tester (see
# tests/clients/redis_differential.py for the command line and the module map).
