"""models: network definitions, torch modules that map an input to genre scores, and their registry.

`registry.py` lists every architecture a recipe may name (what it reads, how it is built, how it is
exported); a new architecture is one entry there and a module here (`cnn.py` holds the CNN/CRNN trained
from scratch); a pretrained backbone gets a subpackage like `musicnn/` (its port, constants and the heads
that continue it); `personal_head.py` is the head trained without torch on a model's embedding.
"""
