"""Capture a vision-language model's attention, every layer and head, and view it in the browser.

The package, by layer (SPEC.md §2):
- `cli.py`, `__main__.py`: the commands; `stopping.py` turns SIGINT/SIGTERM into one clean stop.
- `extract.py` orders the work: check every input, load (`models/`, `peft_adapter.py`, `weights.py`),
  capture, write. It names no model family.
- `models/`: one adapter per family (loading, prompt, where the image tokens are, the processor's geometry).
- `attention_capture.py` (LLM) and `vision_capture.py` (vision tower): the attention function registered with
  transformers' AttentionInterface, streaming float32 rows in chunks; `linear_capture.py` unrolls the implicit
  attention of linear-attention layers; `generate.py` for generate mode.
- `image_layout.py`: where each image's tokens are (regions, layout roles); `index_spec.py`: the index lists of
  --vision-layers, --layers and --heads, and --store.
- `analysis.py`: the per-token tables and the rollout, in torch; `add_rollout.py`: the `rollout` command.
- `writer.py` moves the chunks to disk on a bounded background thread.
- `sample_format.py` owns the on-disk format (meta builder, sizes, writer, readers, validation, listing);
  `safe_write.py` holds the atomic renames and the leftovers of killed runs.
- `importer.py`, `import_layout.py`: attention computed elsewhere, into the same format.
- `notebook.py`: vav.show and `view`, the packaged viewer served with byte ranges on 127.0.0.1.
- `dev/`: tiny checkpoints, synthetic samples and the demo, for tests and benchmarks only.
- `api.py` (vav.capture, on a loaded model), `sample.py` (vav.open -> Sample), `plotting.py` (vav.plot) and
  `batch.py` (a manifest, one model load, split over accelerate processes) sit on top of extract.py.

`import vlm_attention_viz as vav`: vav.capture, vav.open, vav.plot, vav.show, vav.load_processor (README: Python API).
The names load on first use, so importing the package needs neither torch nor matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Public name -> (module, attribute) it lives in. No module may bear a public name: importing a submodule binds
# its name on the package, which would then hide the function.
_API = {
    "capture": ("api", "capture"),
    "load_processor": ("api", "load_processor"),
    "open": ("sample", "open_sample"),
    "Sample": ("sample", "Sample"),
    "plot": ("plotting", "plot"),
    "show": ("notebook", "show"),
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'vlm_attention_viz' has no attribute {name!r}")
    module, attribute = _API[name]
    return getattr(import_module(f".{module}", __name__), attribute)
