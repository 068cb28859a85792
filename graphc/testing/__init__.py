"""Test tooling shipped with graphc: ``graphc.testing.fuzz``, the differential fuzzer
(random programs run in PyTorch, graphc eager and every compiled backend, compared).

Nothing in ``graphc`` imports this package; it imports PyTorch only when PyTorch is
installed, and only when asked to compare with it.
"""
