"""features: what a network reads, computed once and cached: log-mel spectrograms, a pretrained
backbone's outputs, training windows, augmentation.

`inputs.py` has one class per kind of input (the registry names each architecture's); a new cached input
is a class there, computed beside `cache.py` (log-mel) or `embeddings.py` (backbone outputs); a new
augmentation goes in `augment.py`; how windows are drawn from a track in `windows.py`.
"""
