"""Pixel-Perfect Depth inference core in plain PyTorch (no ROS).

Exports are loaded lazily so that ``ppd_ros.model.preprocess`` (numpy/OpenCV only) can be
imported without importing torch.
"""
from importlib import import_module

_EXPORTS = {
    'PPDEstimator': 'estimator',
    'save_estimator': 'estimator',
    'load_from_file': 'estimator',
    'build_estimator': 'factory',
    'EstimatorBuildError': 'factory',
    'add_model_arguments': 'factory',
    'CheckpointError': 'checkpoint',
    'MoGe2': 'moge',
    'MoGeSemanticEncoder': 'moge',
    'load_dit': 'checkpoint',
    'load_encoder': 'checkpoint',
    'load_model_file': 'checkpoint',
    'load_pi3': 'checkpoint',
    'load_video_dit': 'checkpoint',
    'VideoDepthEstimator': 'video',
    'VideoDiT': 'dit_video',
    'Pi3Semantics': 'pi3',
    'save_model_file': 'checkpoint',
    'DiTConfig': 'config',
    'EncoderConfig': 'config',
    'SPDiT': 'dit',
    'SemanticEncoder': 'vit',
    'resize_for_model': 'preprocess',
    'model_size': 'preprocess',
    'check_image_size': 'preprocess',
    'ImageSizeError': 'preprocess',
    'encoded_image_size': 'image_header',
    'Resized': 'preprocess',
    'BACKENDS': 'runtime',
    'model_options_problem': 'runtime',
    'resolve_device': 'runtime',
    'resolve_precision': 'runtime',
    'RELEASED_WEIGHTS': 'released',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f'.{_EXPORTS[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
