"""The discriminative baseline: the stage-1 encoder + light head, behind the estimator protocol
(``predict(rgb) -> (h, w)`` relative log-depth, ``steps``, ``describe()``), so ppd-eval and the
nodes can run it exactly like PPDEstimator. It shares the encoder weights of the demo SP-DiT."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ppd_ros.model.config import EncoderConfig
from ppd_ros.model.estimator import WEIGHTS_DIR
from ppd_ros.model.preprocess import model_size, resize_for_model
from ppd_dev.training.stage1 import DepthRegressor

DEMO_HEAD_FILE = WEIGHTS_DIR / 'baseline_head.safetensors'  # beside the demo model it shares its encoder with


class BaselineEstimator:
    """One forward pass of a ViT depth regressor; output: normalised log-depth (larger = farther)."""

    steps = 1  # one network evaluation; kept settable for protocol compatibility

    def __init__(self, regressor: DepthRegressor, target_area=(128, 96)):
        self.model = regressor.eval().requires_grad_(False)
        self.target_area = tuple(target_area)

    @classmethod
    def from_files(cls, encoder_state: dict, encoder_config: EncoderConfig,
                   head_path: str | Path = DEMO_HEAD_FILE, target_area=(128, 96)) -> 'BaselineEstimator':
        """Encoder weights (``pretrained.*`` keys, as in the demo file) + the head file."""
        head_path = Path(head_path)
        if not head_path.exists():
            raise FileNotFoundError(f'baseline head weights not found at {head_path}')
        regressor = DepthRegressor(encoder_config)
        regressor.encoder.load_state_dict(encoder_state)
        regressor.head.load_state_dict(load_file(str(head_path)))
        return cls(regressor, target_area)

    @classmethod
    def demo(cls) -> 'BaselineEstimator':
        """The baseline trained with the shipped demo model (encoder from its weights file)."""
        from ppd_ros.model.estimator import PPDEstimator
        estimator = PPDEstimator.demo()
        encoder = estimator_encoder(estimator)
        return cls.from_files(encoder.state_dict(), encoder.config, target_area=estimator.target_area)

    def infer_size(self, height: int, width: int) -> tuple[int, int]:
        return model_size(height, width, self.target_area)

    @torch.no_grad()
    def predict(self, rgb: np.ndarray) -> np.ndarray:
        image = resize_for_model(rgb, self.target_area).image
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div_(255.0)
        return self.model(x)[0].numpy().astype(np.float32)

    def predict_batch(self, images) -> list:
        return [self.predict(rgb) for rgb in images]

    def describe(self) -> dict:
        h, w = model_size(3 * 256, 4 * 256, self.target_area)
        return {'model': 'demo discriminative baseline (ViT + light head)', 'device': 'cpu',
                'precision': 'fp32', 'steps': self.steps, 'resolution': f'{w}x{h}'}


def save_head(regressor: DepthRegressor, path: str | Path = DEMO_HEAD_FILE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in regressor.head.state_dict().items()}, str(path))
    return path


def estimator_encoder(estimator):
    """The SemanticEncoder inside a PPDEstimator (attribute name per the model package)."""
    for name in ('encoder', 'semantic_encoder', 'sem_encoder'):
        module = getattr(estimator, name, None)
        if module is not None:
            return module
    raise AttributeError('PPDEstimator exposes no semantic encoder attribute')
