"""Where the released weight files come from: one table, used by the errors about weight files.

``RELEASED_WEIGHTS`` maps each file name the package documents (the name the authors' code loads
it under, ``checkpoints/<name>`` in github.com/gangweix/pixel-perfect-depth) to what it is, the
page that publishes it and the name it has there (MoGe-2 and Pi3 publish theirs as ``model.pt``
and ``model.safetensors``; the PPD README saves them as ``moge2.pt`` and ``pi3.safetensors``).
The pages are the ones the PPD README links (its "Pre-trained Models" and "Usage" sections, at
commit 427a86f): ``ppd_moge.pth`` and ``ppvd.pth`` are Google Drive files, the others are on
Hugging Face model pages. ``PAIRS`` says which encoder goes with which DiT. Imports neither
torch nor any other module of this package.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

PPD_REPOSITORY = 'https://github.com/gangweix/pixel-perfect-depth'
#: The README section that shows ``RELEASED_WEIGHTS`` as a table; weight errors point there.
README_SECTION = 'Released weights'


class ReleasedWeight(NamedTuple):
    what: str          # the model and its role
    page: str          # the page that publishes the file (Hugging Face model page, or the Google
                       # Drive file the PPD README links)
    published_as: str  # the file's name on that page


RELEASED_WEIGHTS: dict[str, ReleasedWeight] = {
    'ppd.pth': ReleasedWeight(
        'PPD DiT, Depth-Anything-v2 semantics (image model)',
        'https://huggingface.co/gangweix/Pixel-Perfect-Depth', 'ppd.pth'),
    'depth_anything_v2_vitl.pth': ReleasedWeight(
        'Depth-Anything-V2-Large, the semantics encoder of ppd.pth',
        'https://huggingface.co/depth-anything/Depth-Anything-V2-Large', 'depth_anything_v2_vitl.pth'),
    'ppd_moge.pth': ReleasedWeight(
        'PPD DiT, MoGe-2 semantics (image model; metric depth with moge2.pt)',
        'https://drive.google.com/file/d/1tabmcsbRVDKDfmO4KU1vOjurzN-wp0HV/view', 'ppd_moge.pth'),
    'moge2.pt': ReleasedWeight(
        'MoGe-2 ViT-L (normal), the semantics encoder of ppd_moge.pth',
        'https://huggingface.co/Ruicheng/moge-2-vitl-normal', 'model.pt'),
    'ppvd.pth': ReleasedWeight(
        'PPVD video DiT (video model)',
        'https://drive.google.com/file/d/1IbMxrljpqkw92Z0G3CVEIrf-JffbI8sN/view', 'ppvd.pth'),
    'pi3.safetensors': ReleasedWeight(
        'Pi3, the semantics encoder of ppvd.pth',
        'https://huggingface.co/yyfz233/Pi3', 'model.safetensors'),
}

#: released DiT file → the encoder file it runs with
PAIRS = {'ppd.pth': 'depth_anything_v2_vitl.pth', 'ppd_moge.pth': 'moge2.pt', 'ppvd.pth': 'pi3.safetensors'}


def where_to_get(path=None) -> str:
    """One short clause for an error about a weight file: the page of ``path``'s file name when it
    is a released one, else the README section listing them all."""
    name = Path(str(path)).name if path is not None else None
    entry = RELEASED_WEIGHTS.get(name)
    if entry is None:
        return f'the released weights and their pages: README, "{README_SECTION}"'
    saved = '' if entry.published_as == name else f' (published as {entry.published_as})'
    return f'{name} is published at {entry.page}{saved}'


def partner(path) -> str | None:
    """The file that goes with a released DiT or encoder file name (``ppd.pth`` ↔
    ``depth_anything_v2_vitl.pth``, …), None for other names."""
    name = Path(str(path)).name
    if name in PAIRS:
        return PAIRS[name]
    return next((dit for dit, encoder in PAIRS.items() if encoder == name), None)


__all__ = ['RELEASED_WEIGHTS', 'ReleasedWeight', 'PAIRS', 'README_SECTION', 'where_to_get', 'partner']
