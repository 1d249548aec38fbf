"""Trainers: one ``<method>_config.py`` dataclass + one ``<method>_trainer.py`` per family; the methods that
run on them are the entries of :mod:`negtune.methods`."""

from negtune.trainers.base import NegtuneTrainer, NonFiniteLossError
from negtune.trainers.click_config import ClickConfig
from negtune.trainers.click_trainer import ClickTrainer
from negtune.trainers.contrastive_config import ContrastiveRationaleConfig
from negtune.trainers.contrastive_trainer import ContrastiveRationaleTrainer
from negtune.trainers.likra_config import LikraConfig
from negtune.trainers.likra_trainer import LikraTrainer
from negtune.trainers.nat_config import NATConfig
from negtune.trainers.nat_trainer import NATTrainer
from negtune.trainers.negassist_config import NegAssistConfig
from negtune.trainers.negassist_trainer import NegAssistTrainer
from negtune.trainers.nft_config import NFTConfig, OfflineNFTConfig
from negtune.trainers.nft_offline_trainer import OfflineNFTTrainer
from negtune.trainers.nft_trainer import NFTTrainer
from negtune.trainers.ngrpo_config import NGRPOConfig
from negtune.trainers.ngrpo_trainer import NGRPOTrainer
from negtune.trainers.rewards import VerifierReward, prompt_dataset
from negtune.trainers.rlvr import ONLINE_METHODS, build_online_trainer, online_config
from negtune.trainers.step_dpo_config import StepDPOConfig
from negtune.trainers.step_dpo_trainer import StepDPOTrainer
from negtune.trainers.step_pg_config import StepPGConfig
from negtune.trainers.step_pg_trainer import StepPGTrainer
from negtune.trainers.token_forget_config import TokenForgetConfig
from negtune.trainers.token_forget_trainer import TokenForgetTrainer
from negtune.trainers.unlearn_config import UNLEARN_METHODS, UnlearnConfig
from negtune.trainers.unlearn_trainer import UnlearnTrainer
from negtune.trainers.unlikelihood_config import UnlikelihoodConfig
from negtune.trainers.unlikelihood_trainer import UnlikelihoodTrainer

__all__ = [
    "ClickConfig", "ClickTrainer", "ContrastiveRationaleConfig", "ContrastiveRationaleTrainer", "LikraConfig", "LikraTrainer", "NATConfig", "NATTrainer", "NegAssistConfig", "NegAssistTrainer", "NFTConfig", "NFTTrainer", "NGRPOConfig",
    "NGRPOTrainer", "NegtuneTrainer", "NonFiniteLossError", "ONLINE_METHODS", "OfflineNFTConfig",
    "OfflineNFTTrainer", "StepDPOConfig", "StepDPOTrainer", "StepPGConfig", "StepPGTrainer", "TokenForgetConfig", "TokenForgetTrainer", "UNLEARN_METHODS", "UnlearnConfig", "UnlearnTrainer", "UnlikelihoodConfig",
    "UnlikelihoodTrainer", "VerifierReward", "build_online_trainer", "online_config", "prompt_dataset",
]
