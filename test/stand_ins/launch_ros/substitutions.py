"""Stand-in of launch_ros.substitutions.FindPackageShare: the package's share folder (ament index)."""
from launch.substitutions import Substitution
from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions


class FindPackageShare(Substitution):
    def __init__(self, package):
        self.package = normalize_to_list_of_substitutions(package)

    def perform(self, context) -> str:
        from ament_index_python.packages import get_package_share_directory
        return get_package_share_directory(perform_substitutions(context, self.package))
