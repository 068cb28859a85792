"""``graphc.onnx`` (``torch.onnx``): importable, so programs that only import it run;
exporting is not available yet."""
from graphc.unsupported import refused

export = refused("torch.onnx.export", "graphc cannot write ONNX models yet",
                 "graphc.save(model.state_dict(), path) for the weights, or "
                 "graphc.compile(model, dump=DIR) for the compiled program")
dynamo_export = refused("torch.onnx.dynamo_export", "graphc cannot write ONNX models yet",
                        "graphc.save(model.state_dict(), path)")
