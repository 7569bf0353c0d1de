"""export: trained networks to ONNX model files and back: the writer, the metadata a model file carries,
and reading a trained network's weights out of an `.onnx`.

A new exported model kind goes in a module here (`onnx_export.py` for genre models, `musicnn.py` for
the plain musicnn taggers); new metadata keys in `metadata.py`.
"""
