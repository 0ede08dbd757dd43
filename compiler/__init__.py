"""Rill: an ahead-of-time compiler from ONNX time-series models to streaming C for ESP32."""

__version__ = "0.1.0"
