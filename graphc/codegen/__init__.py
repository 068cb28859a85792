"""Code generation shared by every code-generating backend: fusion of graph ops into
kernels, lowering of each kernel to the loop IR, and the loop-IR passes (memory
planning, reduction splitting)."""
