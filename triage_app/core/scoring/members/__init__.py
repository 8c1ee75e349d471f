"""Ensemble members: model cards, ONNX export (build time, torch), and runtime (ONNX Runtime)."""
