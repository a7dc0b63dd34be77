"""Visit-sequence models: mash's time-aware Transformer, baselines, pretraining, fine-tuning.

Modules, one job each: :mod:`~mash.models.batch` (the padded batch),
:mod:`~mash.models.embedding` (visit = sum of code vectors),
:mod:`~mash.models.transformer` (time-aware and plain Transformers),
:mod:`~mash.models.baselines` (LSTM, RETAIN, Dipole, T-LSTM, HiTANet),
:mod:`~mash.models.pretraining` (the three self-supervised tasks),
:mod:`~mash.models.train` (loops), :mod:`~mash.models.experiment` (k-fold harness),
:mod:`~mash.models.outcomes`, :mod:`~mash.models.checkpoint`,
:mod:`~mash.models.projection`, :mod:`~mash.models.pipeline` (``mash pretrain`` /
``mash finetune``).
"""

from mash.models.config import FinetuneConfig, ModelConfig, PretrainConfig

__all__ = ["FinetuneConfig", "ModelConfig", "PretrainConfig"]
