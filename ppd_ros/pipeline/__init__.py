"""The one place where a camera frame becomes depth, the same for every entry point.

Nodes and commands only adapt messages, files and flags to it: ``FramePipeline`` takes an RGB
frame (with its calibration, if any) and returns its depth products; ``PipelineSettings`` holds
every choice it makes, with the defaults that every entry point shares.
"""
from .frame_pipeline import FrameInput, FramePipeline, settings_for, settings_problem
from .products import FrameDepth, FrameError
from .scale import ScaleInUse
from .settings import DEFAULTS, PipelineSettings

__all__ = ['DEFAULTS', 'FrameDepth', 'FrameError', 'FrameInput', 'FramePipeline', 'PipelineSettings',
           'ScaleInUse', 'settings_for', 'settings_problem']
