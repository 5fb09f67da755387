"""What callers import: typed clients for the three services, the breaker guard and the worker.

Depends on grpcio, protobuf and the generated code only.
"""
