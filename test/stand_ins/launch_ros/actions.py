"""Stand-in of launch_ros.actions.Node."""
from launch.actions import Action

#: Keyword arguments upstream's Node passes on to ExecuteProcess (others are a TypeError there).
EXECUTE_PROCESS_KWARGS = {'output', 'emulate_tty', 'respawn', 'respawn_delay', 'sigterm_timeout',
                          'sigkill_timeout', 'prefix', 'cwd', 'env', 'additional_env', 'on_exit',
                          'log_cmd', 'condition', 'cached_output'}
OUTPUTS = ('screen', 'log', 'both', 'own_log', 'full')


class Node(Action):
    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None,
                 parameters=None, remappings=None, ros_arguments=None, arguments=None, **kwargs):
        unknown = set(kwargs) - EXECUTE_PROCESS_KWARGS
        if unknown:
            raise TypeError(f'Node() got unexpected keyword arguments {sorted(unknown)}')
        if kwargs.get('output', 'log') not in OUTPUTS and not hasattr(kwargs.get('output'), 'perform'):
            raise ValueError(f"output must be one of {OUTPUTS}, got {kwargs['output']!r}")
        super().__init__(condition=kwargs.get('condition'))
        self.node_package = package
        self.node_executable = executable
        self.node_name = name
        self.node_namespace = namespace
        self.exec_name = exec_name
        self.parameters = list(parameters or [])
        self.remappings = list(remappings or [])
        self.ros_arguments = list(ros_arguments or [])
        self.arguments = list(arguments or [])
        self.output = kwargs.get('output', 'log')

    def execute(self, context):
        """Upstream finds lib/<package>/<executable> first: an unknown package aborts the launch."""
        from ament_index_python.packages import get_package_prefix
        if self.node_package is not None:
            get_package_prefix(self.node_package)
        return None
