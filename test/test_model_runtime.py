"""ppd_ros.model.runtime (device, precision, backend and path rules) and ppd_ros.model.released."""
import subprocess
import sys

import pytest

from ppd_ros.model.released import PAIRS, RELEASED_WEIGHTS, partner, where_to_get
from ppd_ros.model.runtime import BACKENDS, COMPILE_MODES, OPTION_NAMES, model_options_problem


def test_importing_the_rules_imports_no_torch():
    code = ('import sys; import ppd_ros.model.runtime, ppd_ros.model.released, ppd_ros.model.factory; '
            'from ppd_ros.model.runtime import model_options_problem; '
            'model_options_problem("a.pth", None, names="node"); print("torch" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == 'False'


def test_good_combinations_have_no_problem():
    assert model_options_problem() is None
    assert model_options_problem('ppd.pth', 'depth_anything_v2_vitl.pth', 'torch', None, 'on') is None
    assert model_options_problem(None, None, 'tensorrt', 'm.onnx', 'off') is None
    assert model_options_problem('full.pt', 'full.pt') is None  # one file holding both: given twice
    assert model_options_problem('', '', 'torch', '', 'off', names='node') is None  # empty = not given


@pytest.mark.parametrize('names', ['arguments', 'node', 'flags'])
@pytest.mark.parametrize('options, template', [
    (dict(dit='x.pth'), '{dit} and {encoder} must be given together, or neither'),
    (dict(encoder='x.pth'), '{dit} and {encoder} must be given together, or neither'),
    (dict(dit='/w/ppvd.pth'), '{dit} and {encoder} must be given together, or neither: ppvd.pth needs its '
                              'semantics encoder pi3.safetensors'),
    (dict(encoder='/w/depth_anything_v2_vitl.pth'), '{dit} and {encoder} must be given together, or neither: '
                                                    'depth_anything_v2_vitl.pth is the semantics encoder of ppd.pth'),
    (dict(backend='onnxruntime'), '{onnx_path} is needed by {backend} onnxruntime (an ONNX model written by '
                                  'ppd-export)'),
    (dict(onnx_path='m.onnx'), '{onnx_path} is needed by {backend} onnxruntime/tensorrt and only by them '
                               '({backend} is torch)'),
    (dict(backend='tensorrt', onnx_path='m.onnx', compile='on'), '{compile} on is for {backend} torch (an ONNX '
                                                                 'backend compiles itself)'),
    (dict(compile='yes'), "{compile} must be one of off, on, got 'yes'"),
    (dict(backend='tvm'), "{backend} must be one of torch, onnxruntime, tensorrt, got 'tvm'"),
    (dict(dit='a', encoder='b', compile='on', video=True), '{compile} on and {backend} onnxruntime/tensorrt '
                                                           'are for the image model; the video model runs eager PyTorch'),
])
def test_each_problem_is_one_line_in_the_callers_names(names, options, template):
    assert model_options_problem(**options, names=names) == template.format(**OPTION_NAMES[names])


def test_node_messages_keep_the_texts_depth_node_checks_for():
    """The phrases test_depth_node.py looks for in check_depth_node_parameters' messages."""
    assert 'must be given together' in model_options_problem(dit='/tmp/ppd.pth', names='node')
    assert model_options_problem(backend='onnxruntime', names='node').startswith(
        'model.onnx_path is needed by model.backend onnxruntime')
    assert model_options_problem(onnx_path='/tmp/m.onnx', names='node').startswith(
        'model.onnx_path is needed by model.backend onnxruntime/tensorrt and only by them')
    assert model_options_problem(backend='tensorrt', onnx_path='/tmp/m.onnx', compile='on', names='node').startswith(
        'model.compile on is for model.backend torch')


def test_a_mapping_renames_some_options():
    assert model_options_problem('x', None, names={'dit': 'dit_path'}).startswith('dit_path and encoder must')


def test_the_tables():
    assert BACKENDS == ('torch', 'onnxruntime', 'tensorrt') and COMPILE_MODES == ('off', 'on')
    assert set(RELEASED_WEIGHTS) == {'ppd.pth', 'depth_anything_v2_vitl.pth', 'ppd_moge.pth', 'moge2.pt',
                                     'ppvd.pth', 'pi3.safetensors'}
    assert set(PAIRS) | set(PAIRS.values()) == set(RELEASED_WEIGHTS)
    assert all(entry.page.startswith('https://') and entry.what for entry in RELEASED_WEIGHTS.values())
    assert partner('a/b/ppd_moge.pth') == 'moge2.pt' and partner('pi3.safetensors') == 'ppvd.pth'
    assert partner('mine.pth') is None


def test_where_to_get_is_one_short_clause():
    assert where_to_get('/x/moge2.pt') == ('moge2.pt is published at https://huggingface.co/Ruicheng/'
                                           'moge-2-vitl-normal (published as model.pt)')
    assert where_to_get('ppd.pth') == 'ppd.pth is published at https://huggingface.co/gangweix/Pixel-Perfect-Depth'
    assert where_to_get('mine.pth') == where_to_get() == 'the released weights and their pages: README, ' \
                                                         '"Released weights"'
