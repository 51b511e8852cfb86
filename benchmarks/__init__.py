"""Benchmarks for mailkit: latency-bound speed comparison, loopback throughput,
peak memory and profiles of end-to-end sending.

Run them with ``python -m benchmarks --help`` from the repository root. Every
server they start listens on 127.0.0.1 only and stops by itself.
"""
