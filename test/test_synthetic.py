"""The procedural world: determinism, exact depth, camera geometry, sequences, simulated sensors."""
import cv2
import numpy as np
import pytest

from ppd_ros.geometry.backproject import depth_to_points
from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.synthetic import (Box, Cylinder, Material, Plane, Scene, Sphere, camera_pose, camera_sequence,
                               render_frame, render_view, simulate_lidar, simulate_range, simulate_rgbd)
from ppd_ros.synthetic.scene import camera_rays

W, H = 96, 72


@pytest.fixture(scope='module')
def frames():
    return {kind: render_frame(7, W, H, kind=kind) for kind in ('indoor', 'outdoor')}


def _single(prim, intr, pose=None):
    scene = Scene([prim], [Material('noise', (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))])
    return render_view(scene, camera_pose((0.0, 0.0, 0.0)) if pose is None else pose, intr)


def test_same_seed_same_frame_and_different_seed_differs():
    a, b = render_frame(3, W, H, kind='outdoor'), render_frame(3, W, H, kind='outdoor')
    c = render_frame(4, W, H, kind='outdoor')
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth) and np.array_equal(a.valid, b.valid)
    assert not np.array_equal(a.depth, c.depth)


def test_frame_fields(frames):
    for kind, f in frames.items():
        assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
        assert f.depth.shape == (H, W) and f.depth.dtype == np.float32
        assert f.valid.dtype == bool and f.intrinsics.width == W and f.intrinsics.height == H
        assert np.isfinite(f.depth[f.valid]).all() and (f.depth[f.valid] > 0).all()
        assert np.isposinf(f.depth[~f.valid]).all()
        assert f.rgb.std() > 10, 'textured and shaded, not flat'
    assert frames['indoor'].valid.all(), 'a closed room has no sky'
    assert 0 < (~frames['outdoor'].valid).sum(), 'outdoor sky is invalid'
    assert frames['outdoor'].depth[frames['outdoor'].valid].max() <= 80.0


def test_depth_ranges_per_kind():
    indoor = [render_frame(s, 48, 36, kind='indoor') for s in range(4)]
    outdoor = [render_frame(s, 48, 36, kind='outdoor') for s in range(4)]
    d_in = np.concatenate([f.depth[f.valid] for f in indoor])
    d_out = np.concatenate([f.depth[f.valid] for f in outdoor])
    assert 0.3 < d_in.min() and d_in.max() < 12.0
    assert 0.5 < d_out.min() and d_out.max() <= 80.0 and d_out.max() > 20.0


def test_plane_at_constant_z_is_exact():
    intr = Intrinsics(70.0, 64.0, 40.3, 29.1, 80, 60)
    f = _single(Plane(normal=(1.0, 0.0, 0.0), offset=3.7), intr)  # camera looks along world +x
    assert f.valid.all()
    assert (f.depth == np.float32(3.7)).all()
    moved = _single(Plane(normal=(1.0, 0.0, 0.0), offset=3.7), intr, camera_pose((0.5, 0.2, -0.1)))
    assert (moved.depth == np.float32(3.7 - 0.5)).all()


def test_sphere_depth_is_analytic():
    intr = Intrinsics(60.0, 60.0, 32.0, 24.0, 65, 49)
    center, radius = np.array([4.0, 0.3, -0.2]), 1.0
    f = _single(Sphere(center=center, radius=radius), intr)
    # The optical axis is world +x; the centre pixel's ray is (1, 0, 0) in the world.
    assert f.depth[24, 32] == pytest.approx(4.0 - np.sqrt(radius ** 2 - 0.3 ** 2 - 0.2 ** 2), rel=1e-6)
    # Every pixel: independent closed form with unit rays, range → z-depth.
    v, u = np.mgrid[0:intr.height, 0:intr.width]
    cam = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones(u.shape)], -1)
    world = cam @ np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]).T
    unit = world / np.linalg.norm(world, axis=-1, keepdims=True)
    b = unit @ center
    disc = b ** 2 - (center @ center - radius ** 2)
    hit = disc >= 0
    z = (b - np.sqrt(np.where(hit, disc, 0))) / np.linalg.norm(cam, axis=-1)
    assert np.array_equal(hit, f.valid)
    np.testing.assert_allclose(f.depth[hit], z[hit], rtol=2e-6)


def _assert_nearest_exact_hits(f):
    R, o = f.T_world_cam[:3, :3], f.T_world_cam[:3, 3]
    rays = camera_rays(f.intrinsics, R)
    hits = np.stack([p.intersect(o, *rays) for p in f.scene.primitives])  # no culling
    nearest = hits.min(axis=0)
    valid = np.isfinite(nearest) & (nearest <= f.scene.max_depth)
    assert np.array_equal(valid, f.valid)
    assert np.array_equal(nearest[valid].astype(np.float32), f.depth[valid])
    assert np.array_equal(hits.argmin(axis=0)[valid], f.object_id[valid])


@pytest.mark.parametrize('kind', ['indoor', 'outdoor'])
@pytest.mark.parametrize('seed', [0, 1, 7])
def test_every_depth_is_the_nearest_exact_hit(kind, seed):
    """No blending and no culling mistakes: each depth is the nearest primitive's own exact hit
    (brute force over all primitives at every pixel centre), never a mix across an edge."""
    _assert_nearest_exact_hits(render_frame(seed, 80, 60, kind=kind))


def test_thin_wires_and_poles_are_exact():
    intr = Intrinsics(300.0, 300.0, 160.3, 119.6, 320, 240)
    mat = (0,)
    prims = [Plane(normal=(1.0, 0.0, 0.0), offset=20.0, materials=mat),
             Cylinder(center=(6.0, 0.5, 0.3), axis=(0.2, 1.0, 0.35), half_length=4.0, radius=0.006, materials=mat),
             Cylinder(center=(9.0, -1.0, 0.0), axis=(0.0, 0.0, 1.0), half_length=3.0, radius=0.03, materials=mat),
             Box(center=(3.0, 0.8, -0.5), half=(0.01, 0.01, 1.0), materials=mat)]
    scene = Scene(prims, [Material('stripes', (0.9, 0.9, 0.9), (0.1, 0.1, 0.1), scale=0.3)])
    f = render_view(scene, camera_pose((0.0, 0.0, 0.0), yaw=0.05, pitch=0.02), intr)
    _assert_nearest_exact_hits(f)
    for k in (1, 2, 3):
        assert (f.object_id == k).sum() > 20, f'thin primitive {k} is visible'


def test_backprojected_plane_is_the_plane():
    """Depth, intrinsics and pose agree: GT points of a slanted plane satisfy its equation."""
    intr = Intrinsics(90.0, 80.0, 45.5, 30.2, 96, 64)
    normal = np.array([1.0, 0.4, 0.3]) / np.linalg.norm([1.0, 0.4, 0.3])
    pose = camera_pose((0.1, -0.2, 0.3), yaw=0.1, pitch=-0.05, roll=0.02)
    f = _single(Plane(normal=normal, offset=4.0), intr, pose)
    pts = depth_to_points(f.depth, intr)[f.valid].astype(np.float64)
    world = pts @ pose[:3, :3].T + pose[:3, 3]
    np.testing.assert_allclose(world @ normal, 4.0, atol=2e-5)
    centred = pts - pts.mean(0)
    assert np.linalg.svd(centred, compute_uv=False)[-1] / np.sqrt(len(pts)) < 1e-5  # coplanar


def _floor_view(**scene_args):
    """A grey floor 1.5 m below a camera pitched down 35°: nearer at the bottom, farther at the top."""
    scene = Scene([Plane(normal=(0.0, 0.0, 1.0), offset=0.0)], [Material('noise', (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                                                                          grain=0.0)],
                  light_dir=(0.0, 0.0, 1.0), ambient=0.3, **scene_args)
    return render_view(scene, camera_pose((0.0, 0.0, 1.5), pitch=np.radians(-35)), Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48))


def test_depth_cues_haze_and_lamp():
    """Aerial perspective fades far surfaces towards the horizon colour; a lamp lights what is near it
    more (inverse square). Neither changes the depth."""
    plain, hazy = _floor_view(), _floor_view(haze_distance=20.0)
    assert np.array_equal(plain.depth, hazy.depth)
    lum = lambda f, rows: f.rgb[rows].astype(float).mean()
    near, far = slice(44, 48), slice(0, 4)  # bottom rows are nearer than top rows
    assert plain.depth[far].mean() > 2 * plain.depth[near].mean()
    assert abs(lum(plain, far) - lum(plain, near)) < 2, 'a uniformly lit floor has no brightness gradient'
    assert lum(hazy, far) - lum(plain, far) > 2 * (lum(hazy, near) - lum(plain, near)) > 0  # fades to the bright horizon
    lit = _floor_view(lamp=((2.0, 0.0, 1.0), 2.0))  # a lamp 1 m above the floor, 2 m ahead
    gain = lit.rgb.astype(float).mean(axis=(1, 2)) - plain.rgb.astype(float).mean(axis=(1, 2))
    assert (gain > 0).all()
    assert gain.max() > 3 * gain[0], 'the floor under the lamp is lit most, the far floor least'


def test_primitive_types_render():
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    for prim in (Box(center=(5.0, 0.0, 0.0), half=(0.5, 1.0, 0.7)),
                 Cylinder(center=(5.0, 0.0, 0.0), axis=(0.0, 0.3, 1.0), half_length=1.0, radius=0.4)):
        f = _single(prim, intr)
        assert 0 < f.valid.mean() < 1
        assert f.depth[f.valid].min() >= 4.0 - 1e-6


def test_static_sequence_is_constant_and_smooth_sequence_moves_a_little():
    static = camera_sequence(5, 3, 64, 48, kind='indoor', motion='static')
    assert all(np.array_equal(static[0].depth, f.depth) and np.array_equal(static[0].rgb, f.rgb) for f in static)
    moving = camera_sequence(5, 6, 64, 48, kind='outdoor', motion='smooth')
    assert len(moving) == 6 and all(f.scene is moving[0].scene for f in moving)
    assert not np.array_equal(moving[0].depth, moving[-1].depth)
    for a, b in zip(moving[:-1], moving[1:]):
        step = np.linalg.norm(b.T_world_cam[:3, 3] - a.T_world_cam[:3, 3])
        turn = np.degrees(np.arccos(np.clip((np.trace(a.T_world_cam[:3, :3].T @ b.T_world_cam[:3, :3]) - 1) / 2, -1, 1)))
        assert 0 < step < 0.2 and turn < 2.0
    with pytest.raises(ValueError, match='motion'):
        camera_sequence(5, 2, motion='teleport')


def test_bad_arguments_raise_clearly():
    with pytest.raises(ValueError, match='kind'):
        render_frame(0, 32, 24, kind='underwater')
    with pytest.raises(ValueError, match='size'):
        render_frame(0, 0, 24)


def _project_lidar(scan, frame):
    pts = scan.points.astype(np.float64) @ scan.T_cam_lidar[:3, :3].T + scan.T_cam_lidar[:3, 3]
    intr = frame.intrinsics
    front = pts[:, 2] > 0.1
    pts = pts[front]
    u = np.round(intr.fx * pts[:, 0] / pts[:, 2] + intr.cx).astype(int)
    v = np.round(intr.fy * pts[:, 1] / pts[:, 2] + intr.cy).astype(int)
    inside = (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
    gt = frame.depth[v[inside], u[inside]]
    ok = np.isfinite(gt)
    return pts[inside][ok, 2], gt[ok]


@pytest.mark.parametrize('lines', [16, 64])
def test_lidar_agrees_with_camera_depth(lines):
    frame = render_frame(2, 160, 120, kind='indoor')
    scan = simulate_lidar(frame, lines=lines, range_noise=0.015, seed=1)
    assert scan.points.dtype == np.float32 and scan.points.shape[1] == 3 and scan.lines == lines
    assert scan.T_cam_lidar.shape == (4, 4) and set(np.unique(scan.ring)) <= set(range(lines))
    z, gt = _project_lidar(scan, frame)
    assert len(z) > 5 * lines
    assert np.median(np.abs(z - gt) / gt) < 0.01  # noise 1.5 cm at a few metres
    exact = simulate_lidar(frame, lines=lines, range_noise=0.0, dropout=0.0)
    z, gt = _project_lidar(exact, frame)
    assert np.median(np.abs(z - gt) / gt) < 0.002  # only pixel quantisation and parallax remain


def test_lidar_is_seeded_and_drops_returns():
    frame = render_frame(1, 64, 48, kind='outdoor')
    a, b = simulate_lidar(frame, seed=3), simulate_lidar(frame, seed=3)
    assert np.array_equal(a.points, b.points)
    full = simulate_lidar(frame, dropout=0.0, range_noise=0.0)
    half = simulate_lidar(frame, dropout=0.5, range_noise=0.0)
    assert 0.4 < len(half.points) / len(full.points) < 0.6
    r = np.linalg.norm(full.points, axis=1)
    assert (r >= 0.3).all() and (r <= 100.0).all()


def test_rgbd_hole_fraction_noise_and_blobs(frames):
    frame = frames['indoor']
    n_valid = frame.valid.sum()
    for fraction in (0.1, 0.5):
        depth = simulate_rgbd(frame, hole_fraction=fraction, noise_at_1m=0.002, seed=0)
        assert depth.dtype == np.float32 and depth.shape == frame.depth.shape
        holes = frame.valid & (depth == 0)
        assert abs(holes.sum() / n_valid - fraction) < 0.01
    n, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    assert stats[1:, cv2.CC_STAT_AREA].max() >= 50, 'holes come in blobs, not only single pixels'
    kept = depth > 0
    d = frame.depth[kept]
    sigma = np.std((depth[kept] - d) / (d * d))
    assert 0.0015 < sigma < 0.0025
    clean = simulate_rgbd(frame, hole_fraction=0.0, noise_at_1m=0.0)
    assert np.array_equal(clean[frame.valid], frame.depth[frame.valid])


def test_rgbd_sky_is_zero(frames):
    frame = frames['outdoor']
    depth = simulate_rgbd(frame, hole_fraction=0.2)
    assert (depth[~frame.valid] == 0).all()
    with pytest.raises(ValueError, match='hole_fraction'):
        simulate_rgbd(frame, hole_fraction=1.5)


def test_range_finder(frames):
    frame = frames['indoor']
    intr = frame.intrinsics
    u, v = 30, 20
    ray = np.linalg.norm([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, 1.0])
    assert simulate_range(frame, (u, v), noise=0.0) == pytest.approx(float(frame.depth[v, u]) * ray, rel=1e-6)
    noisy = [simulate_range(frame, (u, v), noise=0.01, seed=s) for s in range(40)]
    assert abs(np.mean(noisy) - frame.depth[v, u] * ray) < 0.01
    sky = np.argwhere(~frames['outdoor'].valid)[0]
    assert np.isnan(simulate_range(frames['outdoor'], (sky[1], sky[0])))
    with pytest.raises(ValueError, match='outside'):
        simulate_range(frame, (W + 5, 0))
