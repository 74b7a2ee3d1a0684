"""Many small networks trained at once (Mingard et al. 2020's P_SGD(f|S)): stacked models, batched optimisers with
torch.optim's formulas, and ``train_ensemble``, which stops each network by a stop rule (``StopRule.clean()``: at 100%
training accuracy; ``StopRule.keras(...)``: the authors' Keras callback) and records the function it ends on."""

from sgdbayes.ensembles.models import CNN, FCN, EnsembleModel
from sgdbayes.ensembles.optim import OPTIMIZERS, BatchedOptimizer, make_optimizer
from sgdbayes.ensembles.stop import KERAS_RUNS_PER_PROCESS, STOP_RULES, StopRule, as_stop_rule, process_layout
from sgdbayes.ensembles.train import (
    LOSSES,
    STATUSES,
    EnsembleResult,
    auto_chunk_size,
    epoch_permutations,
    network_streams,
    train_ensemble,
)

__all__ = ["CNN", "FCN", "EnsembleModel", "OPTIMIZERS", "BatchedOptimizer", "make_optimizer", "LOSSES", "STATUSES",
           "EnsembleResult", "auto_chunk_size", "epoch_permutations", "network_streams", "train_ensemble",
           "StopRule", "STOP_RULES", "KERAS_RUNS_PER_PROCESS", "as_stop_rule", "process_layout"]
