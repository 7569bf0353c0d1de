"""models: network definitions, torch modules that map an input to genre scores.

A new architecture is a module here (`cnn.py` holds the CNN/CRNN trained from scratch); a pretrained
backbone gets a subpackage like `musicnn/` (its port, constants and heads); `personal_head.py` is the
head trained without torch on a model's embedding.
"""
