"""training: datasets, the torch networks, training, evaluation and ONNX export for beets-genreclass.

Rooms: `data/` (tracks, genres, splits), `features/` (cached log-mel, windows, augmentation, backbone
embeddings), `models/` (network definitions and their registry; `models/musicnn/` the pretrained port), `engine/` (config,
training loop, checkpoints, distributed), `export/` (ONNX files and their metadata), `evaluation/`
(metrics and reports), `pipelines/` (runs that sequence the steps); `cli.py` is `genreclass-train`,
`errors.py` the typed errors; `pretrained/` holds the converted musicnn weights.

Needs the `train` extra (torch, onnx, matplotlib, scikit-learn). Depends on `genre_model`, never the reverse.
"""
