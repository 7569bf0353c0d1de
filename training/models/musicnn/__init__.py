"""musicnn: the torch port of the pretrained musicnn taggers (Pons & Serra 2019) and the heads trained on them.

`constants.py` holds musicnn's numbers (sample rate, bands, patch length, layer widths) once;
`network.py` the ported MSD_musicnn and MSD_vgg; `heads.py` the genre heads fine-tuned on their outputs.
"""
