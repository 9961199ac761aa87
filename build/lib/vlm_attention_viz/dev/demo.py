"""The no-GPU demo: a tiny random-weight Qwen3-VL, an image drawn in code, the real pipeline on the CPU."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from ..extract import Request, Result, extract
from .tiny import TinyShape, build_tiny_checkpoint

DEMO_SHAPE = TinyShape(layers=4, heads=4, kv_heads=2, thinking=True)  # like the default Qwen3-VL-2B-Thinking
DEMO_NEW_TOKENS = 24
DEMO_PROMPT = "Describe this image in detail. Where is the sun?"
DEMO_MAX_PIXELS = 448 * 256
DEMO_VISION_LAYERS = "all"  # the tiny tower's two blocks, for the viewer's "vision encoder" overlay


def run_demo(output_dir: Path, mode: str = "prefill") -> Result:
    cache = Path(output_dir).parent / ".tiny-model"
    model = cache / "tiny-qwen3-vl-thinking-demo"
    if not (model / "config.json").is_file():  # built once, then reused: same seed, same weights
        build_tiny_checkpoint(model, DEMO_SHAPE)
    image = cache / "demo.png"
    draw_demo_image().save(image)
    request = Request(
        image=image,
        prompt=DEMO_PROMPT,
        output_dir=Path(output_dir),
        model=str(model),
        mode=mode,
        max_new_tokens=DEMO_NEW_TOKENS,
        device="cpu",
        max_pixels=DEMO_MAX_PIXELS,
        vision_layers=DEMO_VISION_LAYERS,
        overwrite=True,
    )
    return extract(request)


def draw_demo_image(width: int = 448, height: int = 256) -> Image.Image:
    """A landscape with a sun, a house and a tree, so the grid has regions worth clicking."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):  # sky fading into the horizon
        shade = int(120 + 100 * y / height)
        draw.line([(0, y), (width, y)], fill=(shade // 2, shade * 3 // 4, 255))
    draw.rectangle([0, height * 2 // 3, width, height], fill=(70, 150, 60))
    draw.ellipse([width - 110, 20, width - 40, 90], fill=(255, 220, 40))
    draw.rectangle([60, 110, 180, 200], fill=(180, 60, 50))
    draw.polygon([(50, 110), (120, 55), (190, 110)], fill=(110, 40, 30))
    draw.rectangle([105, 150, 135, 200], fill=(60, 40, 20))
    draw.rectangle([260, 120, 275, 200], fill=(90, 60, 30))
    draw.ellipse([230, 70, 305, 140], fill=(30, 110, 40))
    return image
