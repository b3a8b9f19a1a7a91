"""ONNX inference: provider choice, the model package contract, detector and classifier runners."""
