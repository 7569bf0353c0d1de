"""training: datasets, the torch CNN/CRNN, training, evaluation and ONNX export for beets-genreclass.

Needs the `train` extra (torch, onnx, matplotlib, scikit-learn). Depends on `genre_model`, never the reverse.
"""
