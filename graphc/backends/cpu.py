"""``torch.backends.cpu``: what the host CPU offers graphc's LLVM code generator."""
import functools


@functools.lru_cache(maxsize=1)
def get_cpu_capability() -> str:
    """PyTorch's name for the widest vector unit LLVM finds on this CPU: "AVX512",
    "AVX2" or "DEFAULT"."""
    import llvmlite.binding as llvm
    features = llvm.get_host_cpu_features()
    if features.get("avx512f") and features.get("avx512bw"):
        return "AVX512"
    return "AVX2" if features.get("avx2") else "DEFAULT"
