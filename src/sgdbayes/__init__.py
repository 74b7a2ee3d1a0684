"""sgdbayes: the library behind the book "Is SGD a Bayesian sampler?".

Subpackages hold one concern each (kernels, gp, ensembles, noise, sde, ou, ...); the notebooks in ``book/``
only set parameters, call into this library and draw.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("sgdbayes")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"

from sgdbayes.device import get_device  # noqa: E402
from sgdbayes.seed import make_generator, seed_everything  # noqa: E402

__all__ = ["__version__", "get_device", "make_generator", "seed_everything"]
