"""`vav.plot`: one token's attention over the image as a matplotlib figure, for papers.

matplotlib is the optional extra `notebook` (pip install "vlm-attention-viz[notebook]"); it is
imported here only, so the rest of the package never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError
from .sample import Head, Sample, checked_index, open_sample

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OVERLAY_ALPHA = 0.6
OVERLAY_CMAP = "viridis"


def plot(sample: Sample | Path | str, *, layer: int, head: Head = "mean", token: int = -1) -> Figure:
    """The image with token's attention over the image tokens (layer, head) laid over it, a colour bar and a caption.

    The overlay is Sample.image_map(layer, head, token), drawn on the image grid and scaled to its own min..max.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError('vav.plot needs matplotlib: pip install "vlm-attention-viz[notebook]"') from None
    sample = sample if isinstance(sample, Sample) else open_sample(sample)
    token = checked_index(token, sample.seq_len, "token")
    values = sample.image_map(layer, head, token)
    image = sample.image
    figure = Figure(figsize=(6.4, 6.4 * image.height / image.width + 0.8), layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(image)
    overlay = axes.imshow(
        values,
        cmap=OVERLAY_CMAP,
        alpha=OVERLAY_ALPHA,
        interpolation="nearest",
        extent=(0, image.width, image.height, 0),
    )
    axes.set_axis_off()
    figure.colorbar(overlay, ax=axes, label="attention")
    axes.set_title(caption(sample, layer, head, token), fontsize="medium")
    return figure


def caption(sample: Sample, layer: int, head: Head, token: int) -> str:
    """What the figure shows: token, layer, head, over which grid."""
    rows, cols = sample.grid
    heads = f"{head} over {sample.num_heads} heads" if isinstance(head, str) else f"head {head}"
    text = sample.tokens[token]["text"]
    return f"token #{token} {text!r} · layer {checked_index(layer, sample.num_layers, 'layer')} · {heads} · {rows}x{cols} image tokens"
