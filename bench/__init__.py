"""Benchmarks, not tests: wharfie against its peers (compare: issue 14), the layer writer, RUN steps, the cache.

Imports fixtures/ and, for in-process measurements, builder/ and layers/; nothing imports bench/.
"""
