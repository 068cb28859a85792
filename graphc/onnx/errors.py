"""The export's errors, as PyTorch's ``torch.onnx.errors``: both are RuntimeErrors."""


class OnnxExporterError(RuntimeError):
    """The model cannot be exported."""


class UnsupportedOperatorError(OnnxExporterError):
    """A graph op no ONNX operator can express (a random draw)."""
