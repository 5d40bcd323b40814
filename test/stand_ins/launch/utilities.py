"""Stand-in of launch.utilities: substitutions (text or Substitution, or a list of them) → text."""
from typing import Iterable


def normalize_to_list_of_substitutions(value):
    from .substitutions import TextSubstitution
    items = [value] if isinstance(value, str) or hasattr(value, 'perform') else list(value)
    return [TextSubstitution(text=item) if isinstance(item, str) else item for item in items]


def perform_substitutions(context, substitutions: Iterable) -> str:
    """Upstream's rule: the performed texts of a list of substitutions, concatenated."""
    return ''.join(context.perform_substitution(s) for s in normalize_to_list_of_substitutions(substitutions))
