"""A string-array ParamSpec with an empty default (depth_node's ``cameras``): rclpy would declare
an empty list as a byte array, so the spec names its element type (``array_of=str``). It takes
a list, one comma-separated string, or nothing (its default), from -p and from a params file."""
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from ppd_ros.nodes.params import NodeParameters, ParameterError, ParamSpec, parameter_table_markdown  # noqa: E402
from ppd_ros.nodes.runner import node_help  # noqa: E402

NAMES = ParamSpec('names', [], 'Some names', array_of=str,
                  check=lambda names: 'names x' if 'x' in names else None)


def declared(context, *args):
    node = Node('string_array_test', context=context, cli_args=['--ros-args', *args] if args else None)
    return node, NodeParameters(node, [NAMES])


@pytest.mark.parametrize('args, expected', [
    ((), ()),
    (('-p', 'names:=[a, b]'), ('a', 'b')),
    (('-p', 'names:=a, b'), ('a', 'b')),
    (('-p', 'names:=a'), ('a',)),
    (('-p', "names:=''"), ()),
])
def test_a_list_a_comma_separated_string_or_nothing(ros_context, args, expected):
    node, params = declared(ros_context, *args)
    try:
        assert params['names'] == expected
        assert node.describe_parameter('names').type == Parameter.Type.STRING_ARRAY.value
    finally:
        node.destroy_node()


def test_an_empty_list_in_a_params_file_is_the_default(ros_context, tmp_path):
    params_file = tmp_path / 'p.yaml'
    params_file.write_text('string_array_test:\n  ros__parameters:\n    names: []\n')
    node, params = declared(ros_context, '--params-file', str(params_file))
    try:
        assert params['names'] == ()
    finally:
        node.destroy_node()


def test_a_wrong_type_or_a_bad_name_refuses_with_one_line(ros_context):
    with pytest.raises(ParameterError, match="parameter 'names' must be an array of strings"):
        declared(ros_context, '-p', 'names:=[1, 2]')
    with pytest.raises(ParameterError, match="^parameter 'names' names x$"):
        declared(ros_context, '-p', 'names:=a,x')


def test_help_and_the_parameter_page_show_its_type_and_default():
    assert '  names  (array of strings, default [])' in node_help('n', '', [NAMES])
    assert '| `names` | `[]` | Some names |' in parameter_table_markdown([NAMES])
