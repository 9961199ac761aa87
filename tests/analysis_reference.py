"""Slow, plain NumPy / pure-Python references for the token tables and the rollout, computed from a sample's
stored layer files, independently of vlm_attention_viz.analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vlm_attention_viz import sample_format as fmt


def components_8(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """The 8-connected components of a 2-D bool mask, found by a breadth-first walk from each unvisited pixel."""
    rows, cols = mask.shape
    seen = np.zeros_like(mask)
    found = []
    for r in range(rows):
        for c in range(cols):
            if not mask[r, c] or seen[r, c]:
                continue
            seen[r, c] = True
            component, frontier = [], [(r, c)]
            while frontier:
                y, x = frontier.pop()
                component.append((y, x))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = y + dy, x + dx
                        if 0 <= ny < rows and 0 <= nx < cols and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            frontier.append((ny, nx))
            found.append(component)
    return found


def spatial_entropy(image_map: np.ndarray) -> float:
    """Kang et al.'s spatial entropy of a 2-D map: components of a > mean(a), weighted by their mass of a."""
    a = image_map.astype(np.float64)
    mask = a > a.mean()
    masses = [sum(a[y, x] for y, x in component) for component in components_8(mask)]
    if not masses:
        return float("nan")
    shares = np.array(masses) / sum(masses)
    return float(-(shares * np.log(shares)).sum())


def entropy_map_tokens(meta: dict[str, Any]) -> tuple[list[int], int, int]:
    """SPEC's entropy region: the grid's tokens; else the first image's global view, else its region with the
    largest rect, then the one with more tokens, then the first. Returns its tokens in grid order, rows and cols."""
    if "image_regions" not in meta:
        grid = meta["image_grid"]
        return list(range(grid["start_idx"], grid["end_idx"] + 1)), grid["rows"], grid["cols"]
    best = None
    for region in meta["image_regions"]:
        if region["image"] != 0:
            continue
        key = (region["kind"] == "global", region["rect"][2] * region["rect"][3], len(region["tokens"]))
        if best is None or key > best[0]:
            best = (key, region)
    region = best[1]
    return region["tokens"], region["rows"], region["cols"]


def image_tokens(meta: dict[str, Any]) -> np.ndarray:
    """Every image token's position, whatever region it is in."""
    return np.array([t["id"] for t in meta["tokens"] if t["type"] == "image"])


def token_tables(sample: Path, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every TOKEN_TABLES measure as (N, L, H) float64, from the stored (H, N, N) layer files."""
    n, layers, heads = meta["seq_len"], meta["num_layers"], meta["num_heads"]
    image = image_tokens(meta)
    region, rows, cols = entropy_map_tokens(meta)
    special = np.array([t["type"] == "special" for t in meta["tokens"]])
    tables = {name: np.zeros((n, layers, heads)) for name in fmt.TOKEN_TABLES}
    for layer in range(layers):
        attn = np.asarray(fmt.open_layer(sample, meta, layer), dtype=np.float64)
        tables["image_share"][:, layer] = attn[:, :, image].sum(-1).T
        tables["special_share"][:, layer] = attn[:, :, special].sum(-1).T
        with np.errstate(divide="ignore", invalid="ignore"):
            tables["row_entropy"][:, layer] = -np.where(attn > 0, attn * np.log(attn), 0.0).sum(-1).T
        tables["image_entropy"][:, layer] = np.nan  # defined only for the rows after the entropy region
        for h in range(heads):
            for t in range(max(region) + 1, n):
                image_map = attn[h, t, region].reshape(rows, cols)
                tables["image_entropy"][t, layer, h] = spatial_entropy(image_map)
    return tables


def rollout(sample: Path, meta: dict[str, Any]) -> list[np.ndarray]:
    """R_l = Ā_l ⋯ Ā_0 for every layer in float64, Ā_l = rows renormalised (½·mean_h A_l + ½·I)."""
    n = meta["seq_len"]
    result, product = [], np.eye(n)
    for layer in range(meta["num_layers"]):
        mixed = 0.5 * np.asarray(fmt.open_head_aggregate(sample, meta, layer, "mean"), np.float64) + 0.5 * np.eye(n)
        mixed /= mixed.sum(axis=1, keepdims=True)
        product = mixed @ product
        result.append(product)
    return result


def assert_tables_and_rollout_match(sample: Path) -> None:
    """The sample's stored token tables and rollout equal the references, to float16's precision."""
    meta = fmt.validate_sample(sample)
    assert meta["token_tables"] == list(fmt.TOKEN_TABLES)
    for name, expected in token_tables(sample, meta).items():
        stored = np.asarray(fmt.open_token_table(sample, meta, name), np.float64)
        np.testing.assert_allclose(stored, expected, rtol=2.0**-10, atol=1e-6, equal_nan=True, err_msg=name)
    assert fmt.read_rollout(sample, meta) == {"layers": meta["num_layers"], "formula": fmt.ROLLOUT_FORMULA}
    for layer, expected in enumerate(rollout(sample, meta)):
        stored = np.asarray(fmt.open_rollout(sample, meta, layer), np.float64)
        np.testing.assert_allclose(stored, expected, rtol=2.0**-10, atol=1e-5, err_msg=f"rollout layer {layer}")
