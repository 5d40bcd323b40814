"""ppd-depth with the video model: each video / folder of frames is one clip, outputs per frame at
the input size plus an mp4 preview; the factory recognises ppvd.pth from its keys."""
import cv2
import numpy as np
import pytest
import torch

from ppd_ros.cli import depth
from ppd_ros.model.factory import EstimatorBuildError, build_estimator
from ppd_ros.model.video import VideoDepthEstimator


def _frames(n=6, h=40, w=56):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n)]


def test_video_and_folder_are_clips_with_preview(tmp_path):
    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 15, (56, 40))
    folder = tmp_path / 'seq'
    folder.mkdir()
    for i, rgb in enumerate(_frames()):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        writer.write(bgr)
        cv2.imwrite(str(folder / f'{i:03d}.png'), bgr)
    writer.release()
    out = tmp_path / 'out'
    assert depth.main([str(video), str(folder), '--model', 'random-ppvd', '--out', str(out),
                       '--format', 'npy', 'color', '--steps', '1', '-q']) == 0
    npys = sorted((out / 'clip').glob('clip_*_depth.npy'))
    assert len(npys) == 6 and np.load(npys[0]).shape == (40, 56)
    assert len(list(out.glob('0*_depth.npy'))) == 6  # the folder's frames
    for preview in (out / 'clip_depth.mp4', out / 'seq_depth.mp4'):
        capture = cv2.VideoCapture(str(preview))
        count = 0
        while capture.read()[0]:
            count += 1
        assert count == 6, preview
    quiet = tmp_path / 'quiet'  # --no-preview: the per-frame files only
    assert depth.main([str(video), '--model', 'random-ppvd', '--out', str(quiet), '--format', 'npy', '--steps', '1',
                       '-q', '--no-preview']) == 0
    assert not list(quiet.glob('*.mp4')) and len(list((quiet / 'clip').glob('clip_*_depth.npy'))) == 6


def test_factory_detects_the_video_checkpoint(tmp_path):
    est = VideoDepthEstimator.from_config(device='cpu')
    torch.save({'dit_video.' + k: v for k, v in est.model.dit.state_dict().items()}, tmp_path / 'ppvd.pth')
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in est.model.semantics.state_dict().items()},
              str(tmp_path / 'pi3.safetensors'))
    built = build_estimator(dit=tmp_path / 'ppvd.pth', encoder=tmp_path / 'pi3.safetensors', device='cpu',
                            steps=2)
    assert isinstance(built, VideoDepthEstimator) and built.steps == 2 and built.size == 64
    with pytest.raises(EstimatorBuildError, match='needs its semantics encoder'):
        build_estimator(dit=tmp_path / 'ppvd.pth', device='cpu')
    with pytest.raises(EstimatorBuildError, match='swapped'):
        build_estimator(dit=tmp_path / 'pi3.safetensors', encoder=tmp_path / 'ppvd.pth', device='cpu')
