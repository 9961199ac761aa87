"""`python -m vlm_attention_viz demo` writes a valid sample from the tiny model, and reuses its cache."""

from __future__ import annotations

from pathlib import Path

from vlm_attention_viz import sample_format as fmt

from conftest import run


def test_demo_writes_prefill_and_generate_samples(tmp_path: Path) -> None:
    assert run("demo", "--output-dir", tmp_path / "demo") == 0
    weights = next((tmp_path / ".tiny-model").rglob("*.safetensors"))
    built = weights.stat().st_mtime_ns
    assert run("demo", "--output-dir", tmp_path / "demo-generate", "--mode", "generate") == 0
    assert weights.stat().st_mtime_ns == built  # the cached model was reused
    prefill, generate = fmt.validate_sample(tmp_path / "demo"), fmt.validate_sample(tmp_path / "demo-generate")
    assert prefill["mode"] == "prefill" and prefill["image_grid"]["rows"] * prefill["image_grid"]["cols"] > 1
    assert prefill["vision"]["blocks"] == [0, 1]  # the viewer's vision-encoder overlay has data in the demo
    assert generate["seq_len"] == prefill["seq_len"] + generate["generation"]["new_tokens"]
    assert any(t.get("thinking") for t in generate["tokens"])  # the demo model uses a thinking template
    assert [s["name"] for s in fmt.list_samples(tmp_path)] == ["demo", "demo-generate"]
