"""The file formats behind ``graphc.save`` / ``graphc.load`` (``graphc.serialization``):
``archive`` (the zip checks and errors every format shares), ``pytorch`` (PyTorch's
``.pt`` files, read without running code and written for ``torch.load``),
``safetensors_file`` (the safetensors library's format)."""
