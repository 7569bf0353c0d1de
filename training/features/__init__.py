"""features: what a network reads, computed once and cached: log-mel spectrograms, training windows,
augmentation, and a pretrained backbone's outputs (embeddings).

A new cached input goes beside `cache.py` (log-mel) and `embeddings.py` (backbone outputs); a new
augmentation in `augment.py`; how windows are cut from a track in `windows.py`.
"""
