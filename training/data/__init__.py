"""data: the tracks to train on, their genre labels and the hold-out splits.

A new data source (a folder layout, a library, a list file) is a loader in `tracks.py`; a new way of
reading or merging genre names (aliases, vocabularies) goes in `genres.py`; a new split in `splits.py`.
"""
