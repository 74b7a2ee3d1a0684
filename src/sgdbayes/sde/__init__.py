"""Toy SDEs of SGD (Chaudhari & Soatto 2018): vectorised Euler–Maruyama, the double well with a rotational force,
the linear case with non-commuting ``D`` and Hessian, density and current checks, trajectory statistics and local
entropy."""

from sgdbayes.sde.density import DensityCheck, bin_probabilities, chi2_density_check, empirical_current
from sgdbayes.sde.double_well import DoubleWell
from sgdbayes.sde.linear import LinearSDE, non_commuting_example, sample_covariance_zscores
from sgdbayes.sde.local_entropy import local_entropy, sharp_and_wide
from sgdbayes.sde.simulate import SDEPath, deterministic_path, euler_maruyama
from sgdbayes.sde.circulation import (CirculationPaths, circulation_closed_form, critical_point_path, critical_points,
                                      first_order_shift, flux_closed_form, measure_circulation)
from sgdbayes.sde.potential_shift import Quadratic1D, quadratic_1d_problem, sde_samples, smoothed_density_mode, smoothed_mode, stationary_density_1d
from sgdbayes.sde.trajectory import (autocorrelation, brownian_motion, increment_spectrum, low_frequency_power,
                                     moving_coordinates,
                                     outside_band_fraction, reversible_control, white_noise_band)

__all__ = ["CirculationPaths", "Quadratic1D", "circulation_closed_form", "critical_point_path", "critical_points",
           "first_order_shift", "flux_closed_form",
           "low_frequency_power", "measure_circulation", "moving_coordinates", "outside_band_fraction", "quadratic_1d_problem",
           "reversible_control", "sde_samples", "smoothed_density_mode", "smoothed_mode", "stationary_density_1d",
           "DensityCheck", "DoubleWell", "LinearSDE", "SDEPath", "autocorrelation", "bin_probabilities",
           "brownian_motion", "chi2_density_check", "deterministic_path", "empirical_current", "euler_maruyama",
           "increment_spectrum", "local_entropy", "non_commuting_example", "sample_covariance_zscores",
           "sharp_and_wide", "white_noise_band"]
