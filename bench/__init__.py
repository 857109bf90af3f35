"""Benchmarks: figures about cartcast that tests never assert (`make bench`)."""
