"""engine: how a network is trained: the configuration, the training loop, checkpoints, distributed
(torchrun) training and distillation from a teacher.

A new setting goes in `config.py`'s `TrainConfig`; a change to the epoch loop, schedule or optimiser in
`loop.py`; anything resume must restore in `checkpoint.py`.
"""
