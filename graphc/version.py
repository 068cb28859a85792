"""graphc's version: a leaf module, so code that keys caches on it imports nothing else."""
__version__ = "0.1.0"
