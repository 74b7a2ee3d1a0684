"""Gradient noise of SGD (Chaudhari & Soatto 2018): per-sample gradient Gram matrices computed layer by layer, the
spectrum of the diffusion matrix ``D(x)``, the paper's small networks, and SGD temperature experiments."""

from sgdbayes.noise.gram import FallbackWarning, GramResult, per_sample_gradients, per_sample_gram
from sgdbayes.noise.networks import n_weights, small_allcnn, small_fc, small_lenet, tiny_fc
from sgdbayes.noise.replicas import ReplicaRun, temperature, train_replicas
from sgdbayes.noise.spectrum import (NoiseSpectrum, noise_spectrum, spectrum_from_gradients,
                                     spectrum_from_gram)
from sgdbayes.noise.stationary import temperature_experiment, temperature_tests
from sgdbayes.noise.training import TrainRecord, evaluate, per_sample_cross_entropy, train_with_spectra

__all__ = ["FallbackWarning", "GramResult", "NoiseSpectrum", "ReplicaRun", "TrainRecord", "evaluate", "n_weights",
           "noise_spectrum", "per_sample_cross_entropy", "per_sample_gradients", "per_sample_gram", "small_allcnn", "small_fc",
           "small_lenet", "spectrum_from_gradients", "spectrum_from_gram", "temperature", "temperature_experiment",
           "temperature_tests", "tiny_fc", "train_replicas", "train_with_spectra"]
