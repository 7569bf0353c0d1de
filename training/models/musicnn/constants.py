"""musicnn's numbers, written once: its input features and the layer widths of MSD_musicnn and MSD_vgg.

Source: the musicnn 0.1.0 wheel (Pons & Serra 2019), `musicnn/configuration.py` and
`musicnn/models.py`; the converted weights in training/pretrained hold tensors of exactly these
sizes. Only the training side reads this module: the runtime takes its front end from the model
file (`genre_model.frontend.musicnn_frontend` writes the same values into the models we export).
"""

# Input features (musicnn.extractor.batch_data): log10(1 + LOG1P_GAIN * mel power) of a centred STFT.
SAMPLE_RATE = 16000  # Hz, configuration.SR
N_FFT = 512  # samples, configuration.FFT_SIZE
HOP_LENGTH = 256  # samples, configuration.FFT_HOP
N_MELS = 96  # Slaney mel bands, configuration.N_MELS
LOG1P_GAIN = 10000.0  # gain on the mel power inside the log (batch_data's `10000 * audio_rep`)
# Frames in one 3-s patch, the input length the networks were trained on:
# librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1.
PATCH_FRAMES = 187

N_TAGS = 50  # outputs of both taggers: the Million Song Dataset tags, len(configuration.MSD_LABELS)
TF_BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default, used by every musicnn layer

# MSD_musicnn: models.build_musicnn(num_filt_frontend=1.6, num_filt_midend=64, num_units_backend=200).
TIMBRAL_FILTERS = 204  # filters per timbral conv (two of them): int(1.6 * 128)
TEMPORAL_FILTERS = 51  # filters per temporal conv (three of them): int(1.6 * 32)
FRONTEND_CHANNELS = 2 * TIMBRAL_FILTERS + 3 * TEMPORAL_FILTERS  # 561 channels per frame out of the front end
MIDEND_FILTERS = 64  # filters per mid-end conv (three of them): num_filt_midend
# 753: the front end and every mid-end layer's output, concatenated (dense connections) before pooling.
MIDEND_CHANNELS = FRONTEND_CHANNELS + 3 * MIDEND_FILTERS
POOLED_FEATURES = 2 * MIDEND_CHANNELS  # 1506: max and mean over time of each mid-end channel, the back end's input
EMBEDDING_UNITS = 200  # num_units_backend: the dense 'penultimate' layer, the embedding our genre heads export

# MSD_vgg: models.vgg with 128 filters in each of its five 3x3 conv blocks.
VGG_FILTERS = 128
