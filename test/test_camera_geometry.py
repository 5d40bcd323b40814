import numpy as np
import pytest

from ppd_ros.geometry.backproject import depth_to_points
from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.scale.depth_scale import metric_to_relative, near_far_scale, relative_to_metric


def test_scaling_keeps_pixel_centres_on_the_same_rays():
    intr = Intrinsics(525.0, 520.0, 319.5, 239.5, 640, 480)
    half = intr.scaled(0.5, 0.5)
    assert (half.width, half.height) == (320, 240)
    # The image centre ray stays the optical axis after resizing.
    assert half.cx == pytest.approx(159.5) and half.cy == pytest.approx(119.5)
    # A 3-D point projects to corresponding positions in both images.
    X = np.array([0.3, -0.2, 2.0])
    u, v = intr.fx * X[0] / X[2] + intr.cx, intr.fy * X[1] / X[2] + intr.cy
    u2, v2 = half.fx * X[0] / X[2] + half.cx, half.fy * X[1] / X[2] + half.cy
    assert u2 == pytest.approx((u + 0.5) * 0.5 - 0.5)
    assert v2 == pytest.approx((v + 0.5) * 0.5 - 0.5)


def test_from_projection_matrix_and_fov():
    P = [500.0, 0, 320, 0.1, 0, 510.0, 240, 0, 0, 0, 1, 0]
    intr = Intrinsics.from_matrix(P, 640, 480)
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == (500.0, 510.0, 320.0, 240.0)
    fov = Intrinsics.from_fov(90.0, 640, 480)
    assert fov.fx == pytest.approx(320.0)
    with pytest.raises(ValueError):
        Intrinsics.from_matrix(np.zeros(9), 640, 480)


def test_from_focal_fills_square_pixels_and_the_image_centre():
    assert Intrinsics.from_focal(500, 640, 480) == Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
    assert Intrinsics.from_focal(500, 640, 480, fy=510, cx=300, cy=200) == Intrinsics(500, 510, 300, 200, 640, 480)
    fov = Intrinsics.from_fov(90, 640, 480)
    assert (fov.fx, fov.fy, fov.cx, fov.cy) == pytest.approx((320.0, 320.0, 319.5, 239.5))


def test_backprojection_of_a_plane_and_invalid_pixels():
    intr = Intrinsics(100.0, 100.0, 15.5, 11.5, 32, 24)
    depth = np.full((24, 32), 2.0, np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, 0.0, np.inf
    pts = depth_to_points(depth, intr)
    assert pts.shape == (24, 32, 3) and pts.dtype == np.float32
    assert np.isnan(pts[0, :3]).all()
    assert np.allclose(pts[5:, :, 2], 2.0)
    assert pts[11, 31, 0] == pytest.approx((31 - 15.5) / 100.0 * 2.0)
    with pytest.raises(ValueError, match='32x24'):
        depth_to_points(np.ones((10, 10)), intr)


def test_relative_metric_round_trip_and_near_far():
    a, b = near_far_scale(0.5, 20.0)
    r = np.array([0.0, 0.25, 1.0, np.nan], np.float32)
    d = relative_to_metric(r, a, b)
    assert d[0] == pytest.approx(0.5, rel=1e-5) and d[2] == pytest.approx(20.0, rel=1e-5)
    assert np.isnan(d[3])
    assert np.allclose(metric_to_relative(d[:3], a, b), r[:3], atol=1e-5)
    with pytest.raises(ValueError):
        near_far_scale(5.0, 1.0)


def test_pixel_rays_are_computed_once_per_camera_and_read_only():
    from ppd_ros.geometry.backproject import pixel_rays
    first = pixel_rays(Intrinsics(50.0, 60.0, 31.5, 23.5, 64, 48))
    assert pixel_rays(Intrinsics(50.0, 60.0, 31.5, 23.5, 64, 48)) is first  # equal cameras share them
    assert pixel_rays(Intrinsics(51.0, 60.0, 31.5, 23.5, 64, 48)) is not first
    with pytest.raises(ValueError):
        first[0][0, 0] = 1.0


def test_scaled_camera_info_uses_the_intrinsics_rule():
    """One pixel-centre rule: CameraInfo's K and P resize exactly as Intrinsics.scaled does."""
    pytest.importorskip('sensor_msgs.msg')
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from ppd_ros.geometry.camera import resized_camera_matrix
    from ppd_ros.nodes.camera_info import scaled_camera_info
    k_intr = Intrinsics(525.3, 519.7, 318.1, 243.9, 640, 480)
    p_intr = Intrinsics(510.2, 511.4, 322.6, 236.8, 640, 480)
    p = np.hstack([p_intr.K, [[-51.0], [0.0], [0.0]]])  # stereo right: Tx = -fx·B
    info = CameraInfo(width=640, height=480, k=k_intr.K.ravel().tolist(), p=p.ravel().tolist())
    for width, height in ((320, 240), (518, 392), (1280, 720)):
        sx, sy = width / 640, height / 480
        out = scaled_camera_info(info, width, height, Header())
        assert np.array_equal(np.reshape(out.k, (3, 3)), k_intr.scaled(sx, sy).K)
        out_p = np.reshape(out.p, (3, 4))
        assert np.array_equal(out_p[:, :3], p_intr.scaled(sx, sy).K)
        assert out_p[0, 3] == -51.0 * sx and np.array_equal(out_p, resized_camera_matrix(p, sx, sy))
