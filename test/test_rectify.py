"""Rectification (ppd_ros.geometry.rectify) against synthetic truth, and the CameraInfo
intrinsics rule (Intrinsics.from_calibration).

A truth image is drawn as the rectified camera (P) sees known 3-D points; the raw image is made
from it by running each raw pixel through the distortion model (cv2.undistortPoints, the exact
inverse of what a lens does). Rectifying the raw image must give back the truth: the points
land where P projects them, and back-projection with the rectified intrinsics gives their rays.
"""
import cv2
import numpy as np
import pytest

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.rectify import Calibration, Rectifier

W, H = 320, 240
K = np.array([[250.0, 0.0, 161.0], [0.0, 245.0, 118.0], [0.0, 0.0, 1.0]])
P = np.hstack([np.array([[240.0, 0.0, 158.0], [0.0, 240.0, 121.0], [0.0, 0.0, 1.0]]), np.zeros((3, 1))])
PLUMB_BOB_D = [-0.28, 0.09, 0.0012, -0.0008, -0.012]
RATIONAL_D = [-0.25, 0.05, 0.001, -0.0005, 0.0, 0.02, 0.0, 0.0]
FISHEYE_D = [-0.02, 0.01, -0.004, 0.0005]


def calibration(model, d, p=P, k=K, r=np.eye(3)):
    return Calibration.of(W, H, model, d, k.ravel(), np.asarray(r).ravel(), np.asarray(p).ravel())


def scene_points():
    """3-D points spread over the view, corners included (where distortion is largest)."""
    u, v = np.meshgrid(np.linspace(25, W - 26, 7), np.linspace(20, H - 21, 5))
    x = (u.ravel() - P[0, 2]) / P[0, 0]
    y = (v.ravel() - P[1, 2]) / P[1, 1]
    z = np.linspace(1.0, 4.0, x.size)
    return np.stack([x * z, y * z, z], axis=1)


def blobs(pixels, sigma=1.6):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    image = np.zeros((H, W), np.float32)
    for u, v in pixels:
        image += np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * sigma ** 2))
    return image


def distort(truth, cal):
    """The raw image a lens with `cal` would record of the rectified `truth`."""
    k, d, r, new_k = cal.matrices()
    raw_pixels = np.stack(np.meshgrid(np.arange(W), np.arange(H)), -1).reshape(-1, 1, 2).astype(np.float64)
    if cal.distortion_model == 'equidistant':
        where = cv2.fisheye.undistortPoints(raw_pixels, k, d, R=r, P=new_k)
    else:
        where = cv2.undistortPoints(raw_pixels, k, d, R=r, P=new_k)
    where = where.reshape(H, W, 2).astype(np.float32)
    return cv2.remap(truth, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def centroid(image, u, v, radius=5):
    u0, v0 = int(round(u)), int(round(v))
    patch = image[v0 - radius:v0 + radius + 1, u0 - radius:u0 + radius + 1].astype(np.float64)
    yy, xx = np.mgrid[v0 - radius:v0 + radius + 1, u0 - radius:u0 + radius + 1]
    return (patch * xx).sum() / patch.sum(), (patch * yy).sum() / patch.sum()


@pytest.mark.parametrize('model, d', [('plumb_bob', PLUMB_BOB_D), ('rational_polynomial', RATIONAL_D),
                                      ('equidistant', FISHEYE_D)])
def test_rectified_image_puts_points_where_p_projects_them(model, d):
    cal = calibration(model, d)
    points = scene_points()
    truth_pixels = (P[:, :3] @ points.T).T
    truth_pixels = truth_pixels[:, :2] / truth_pixels[:, 2:]
    raw = distort(blobs(truth_pixels), cal)

    # the lens moves the corner points by pixels: ignoring D would be visibly wrong
    raw_offsets = [np.hypot(*np.subtract(centroid(raw, *raw_position(points[i], cal)), truth_pixels[i]))
                   for i in (0, len(points) - 1)]
    assert min(raw_offsets) > 4.0

    rectified = Rectifier().rectify(raw, cal)
    intrinsics = cal.rectified_intrinsics()
    assert intrinsics == Intrinsics(240.0, 240.0, 158.0, 121.0, W, H)  # P's, not K's
    for point, (u, v) in zip(points, truth_pixels):
        cu, cv = centroid(rectified, u, v)
        assert np.hypot(cu - u, cv - v) < 0.15, (model, u, v, cu, cv)
        ray = np.array([(cu - intrinsics.cx) / intrinsics.fx, (cv - intrinsics.cy) / intrinsics.fy, 1.0])
        cosine = ray @ point / np.linalg.norm(ray) / np.linalg.norm(point)
        assert np.degrees(np.arccos(min(1.0, cosine))) < 0.05
    # the truth everywhere (not only at the points), up to interpolation (the lens squeezes the
    # corner blobs into fewer raw pixels: their peaks differ by up to ~0.2 of 1)
    valid = Rectifier().valid(cal)
    assert valid.all()  # P = K-like: the rectified view sees only raw pixels
    truth = blobs(truth_pixels)
    error, unrectified_error = np.abs(rectified - truth).mean(), np.abs(raw - truth).mean()
    assert error < 0.002 and error < 0.1 * unrectified_error


def raw_position(point, cal):
    k, d, _, _ = cal.matrices()
    if cal.distortion_model == 'equidistant':
        return cv2.fisheye.projectPoints(point.reshape(1, 1, 3), np.zeros(3), np.zeros(3), k, d)[0].ravel()
    return cv2.projectPoints(point.reshape(1, 3), np.zeros(3), np.zeros(3), k, d)[0].ravel()


def test_maps_are_built_once_per_calibration():
    rectifier = Rectifier()
    cal = calibration('plumb_bob', PLUMB_BOB_D)
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    first = rectifier.rectify(image, cal)
    for _ in range(3):
        np.testing.assert_array_equal(rectifier.rectify(image, calibration('plumb_bob', PLUMB_BOB_D)), first)
    assert rectifier.maps_built == 1
    rectifier.rectify(image, calibration('plumb_bob', [-0.1, 0.0, 0.0, 0.0, 0.0]))
    assert rectifier.maps_built == 2


def test_a_wider_p_leaves_borders_that_are_marked_invalid():
    wide = P.copy()
    wide[0, 0] = wide[1, 1] = 150.0  # the rectified view keeps more than the raw image sees
    cal = calibration('plumb_bob', [0.2, 0.0, 0.0, 0.0, 0.0], p=wide)
    valid = Rectifier().valid(cal)
    assert not valid[0, 0] and not valid[-1, -1] and valid[H // 2, W // 2]
    rectified = Rectifier().rectify(np.full((H, W), 200, np.uint8), cal)
    assert (rectified[~valid] < 200).all() and (rectified[valid] == 200).all()


def test_rectifying_with_p_unset_uses_k_and_identity_r():
    cal = calibration('plumb_bob', PLUMB_BOB_D, p=np.zeros((3, 4)), r=np.zeros((3, 3)))
    assert cal.rectified_intrinsics() == Intrinsics.from_matrix(K, W, H)
    points = scene_points()[[0, 17, -1]]
    pixels = (K @ points.T).T
    pixels = pixels[:, :2] / pixels[:, 2:]
    rectified = Rectifier().rectify(distort(blobs(pixels), cal), cal)
    for u, v in pixels:
        assert np.hypot(*np.subtract(centroid(rectified, u, v), (u, v))) < 0.15


@pytest.mark.parametrize('model, d, message', [
    ('kannala_brandt', [0.1] * 4, "'kannala_brandt' is not supported"),
    ('plumb_bob', [0.1, 0.2, 0.3], 'needs 4, 5, 8, 12 or 14 coefficients, got 3'),
    ('equidistant', [0.1], 'needs 4 coefficients, got 1'),
    ('plumb_bob', [np.nan, 0, 0, 0, 0], 'non-finite'),
])
def test_unusable_calibrations_say_why(model, d, message):
    cal = calibration(model, d)
    assert message in cal.problem()
    with pytest.raises(ValueError, match='cannot rectify'):
        Rectifier().maps(cal)


def test_distorted_means_a_nonzero_coefficient():
    assert not calibration('plumb_bob', [0.0] * 5).distorted
    assert not calibration('plumb_bob', []).distorted
    assert calibration('plumb_bob', [0, 0, 0, 0, 1e-6]).distorted


# ------------------------------------------------------------------ CameraInfo → intrinsics rule

def test_intrinsics_from_calibration_take_p_then_k_and_validate():
    k = np.array([[50.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])
    p = np.array([[55.0, 0, 30.0, -5.5], [0, 58.0, 22.0, 0], [0, 0, 1, 0]])
    assert Intrinsics.from_calibration(k, p, 64, 48) == Intrinsics(55.0, 58.0, 30.0, 22.0, 64, 48)
    assert Intrinsics.from_calibration(k, np.zeros(12), 64, 48) == Intrinsics(50.0, 60.0, 31.5, 23.5, 64, 48)
    with pytest.raises(ValueError, match='all zero'):
        Intrinsics.from_calibration(np.zeros(9), np.zeros(12), 64, 48)
    # a P that is set but broken is an error, not a silent switch to the raw image's K
    broken = p.copy()
    broken[0, 0] = 0.0
    with pytest.raises(ValueError, match='P is not a usable pinhole matrix'):
        Intrinsics.from_calibration(k, broken, 64, 48)
    broken = p.copy()
    broken[2, 2] = 0.0
    with pytest.raises(ValueError, match='P is not a pinhole matrix'):
        Intrinsics.from_calibration(k, broken, 64, 48)
    with pytest.raises(ValueError, match='K has non-finite'):
        Intrinsics.from_calibration(np.full(9, np.inf), np.zeros(12), 64, 48)
