"""Trainers: one ``<method>_config.py`` dataclass + one ``<method>_trainer.py`` per method."""

from negtune.trainers.base import NegtuneTrainer, NonFiniteLossError
from negtune.trainers.contrastive_config import ContrastiveRationaleConfig
from negtune.trainers.contrastive_trainer import ContrastiveRationaleTrainer
from negtune.trainers.unlearn_config import UNLEARN_METHODS, UnlearnConfig
from negtune.trainers.unlearn_trainer import UnlearnTrainer
from negtune.trainers.unlikelihood_config import UnlikelihoodConfig
from negtune.trainers.unlikelihood_trainer import UnlikelihoodTrainer

__all__ = [
    "ContrastiveRationaleConfig", "ContrastiveRationaleTrainer", "NegtuneTrainer", "NonFiniteLossError",
    "UNLEARN_METHODS", "UnlearnConfig", "UnlearnTrainer", "UnlikelihoodConfig", "UnlikelihoodTrainer",
]
