"""musicnn's numbers, written once (musicnn 0.1.0, Pons & Serra 2019: `musicnn.configuration`)."""

SAMPLE_RATE = 16000  # Hz, musicnn configuration.SR
N_FFT = 512  # samples, configuration.FFT_SIZE
HOP_LENGTH = 256  # samples, configuration.FFT_HOP
N_MELS = 96  # configuration.N_MELS
# Frames in one 3-s patch: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1.
PATCH_FRAMES = 187
