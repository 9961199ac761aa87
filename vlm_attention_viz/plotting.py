"""`vav.plot`: one token's attention over the image as a matplotlib figure, for papers.

matplotlib is the optional extra `notebook` (pip install "vlm-attention-viz[notebook]"); it is
imported here only, so the rest of the package never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .sample import Head, Sample, checked_index, open_sample

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OVERLAY_ALPHA = 0.6
OVERLAY_CMAP = "viridis"


def plot(
    sample: Sample | Path | str, *, layer: int, head: Head = "mean", token: int = -1, region: int | None = None
) -> Figure:
    """The image with token's attention over the image tokens (layer, head) laid over it, a colour bar and a caption.

    The overlay is Sample.image_map(layer, head, token, region), drawn over the part of its image that the region
    covers and scaled to its own min..max. region may be left out where the sample has one region.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError('vav.plot needs matplotlib: pip install "vlm-attention-viz[notebook]"') from None
    sample = sample if isinstance(sample, Sample) else open_sample(sample)
    token = checked_index(token, sample.seq_len, "token")
    region = sample.region_index(region)
    values = sample.image_map(layer, head, token, region)
    chosen = sample.regions[region]
    image = sample.images[chosen["image"]]
    figure = Figure(figsize=(6.4, 6.4 * image.height / image.width + 0.8), layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(image)
    overlay = axes.imshow(
        values,
        cmap=OVERLAY_CMAP,
        alpha=OVERLAY_ALPHA,
        interpolation="nearest",
        extent=region_extent(sample, chosen, image.size),
    )
    axes.set_axis_off()
    figure.colorbar(overlay, ax=axes, label="attention")
    axes.set_title(caption(sample, layer, head, token, region), fontsize="medium")
    return figure


def region_extent(sample: Sample, region: dict[str, Any], stored: tuple[int, int]) -> tuple[float, float, float, float]:
    """imshow's (left, right, bottom, top) of the region's rect, from the size the model saw to the stored image's."""
    seen_width, seen_height = (
        sample.meta["images"][region["image"]]["size"] if "images" in sample.meta else sample.meta["image_size"]
    )
    x, y, w, h = region["rect"]
    sx, sy = stored[0] / seen_width, stored[1] / seen_height
    return (x * sx, (x + w) * sx, (y + h) * sy, y * sy)


def caption(sample: Sample, layer: int, head: Head, token: int, region: int) -> str:
    """What the figure shows: token, layer, head, over which grid (and which region, where there are several)."""
    chosen = sample.regions[region]
    heads = f"{head} over {sample.num_heads} heads" if isinstance(head, str) else f"head {head}"
    text = sample.tokens[token]["text"]
    where = "" if sample.is_single_grid else f" of region {region} ({chosen['kind']}, image {chosen['image']})"
    return (
        f"token #{token} {text!r} · layer {checked_index(layer, sample.num_layers, 'layer')} · {heads} · "
        f"{chosen['rows']}x{chosen['cols']} image tokens{where}"
    )
