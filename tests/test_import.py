"""`python -m vlm_attention_viz import`: a precomputed .npy attention array becomes a sample, or one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlm_attention_viz import importer
from vlm_attention_viz import sample_format as fmt
from vlm_attention_viz.models import ADAPTERS, adapter_named

from conftest import assert_refused, run

LAYERS, HEADS, ROWS, COLS = 3, 4, 5, 8
PREFIX = ["<|im_start|>", "user", "\n", "<|vision_start|>"]
SUFFIX = ["<|vision_end|>", "Where", " is", " the", " cat", "?", "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"]
TEXTS = PREFIX + ["<|image_pad|>"] * (ROWS * COLS) + SUFFIX
N = len(TEXTS)
SPAN = (len(PREFIX), len(PREFIX) + ROWS * COLS - 1)


def causal_attention(layers: int, heads: int, n: int, seed: int = 0) -> np.ndarray:
    """Softmax rows under a causal mask, like a decoder's attention probabilities."""
    logits = np.random.default_rng(seed).standard_normal((layers, heads, n, n)) * 2
    logits[..., np.triu(np.ones((n, n), dtype=bool), k=1)] = -np.inf
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return probs / probs.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """attention.npy (float32), tokens.npy (np.save of a list of str) and an image of the grid's aspect ratio (8:5)."""
    folder = tmp_path_factory.mktemp("import_inputs")
    np.save(folder / "attention.npy", causal_attention(LAYERS, HEADS, N).astype(np.float32))
    np.save(folder / "tokens.npy", TEXTS)
    Image.new("RGB", (320, 200), (30, 120, 200)).save(folder / "image.png")
    return folder


def import_args(
    folder: Path,
    output: Path,
    *extra: str | int | Path,
    attention: str = "attention.npy",
    tokens: str = "tokens.npy",
    image: str = "image.png",
) -> list:
    """The files are named relative to `folder`; an absolute name is taken as it is."""
    return [
        "import",
        "--attention",
        folder / attention,
        "--tokens",
        folder / tokens,
        "--image",
        folder / image,
        "--output-dir",
        output,
        *extra,
    ]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_round_trip_stores_the_float16_cast_with_head_mean_and_max(
    dtype: type, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attention = causal_attention(LAYERS, HEADS, N, seed=1).astype(dtype)
    np.save(tmp_path / "attention.npy", attention)
    monkeypatch.setattr(importer, "CHUNK_BYTES", HEADS * N * 4 * 7)  # 7 rows at a time: a layer streams in 8 chunks
    args = import_args(
        inputs,
        tmp_path / "out" / "s",
        "--image-span",
        *SPAN,
        "--grid",
        f"{ROWS}x{COLS}",
        attention=str(tmp_path / "attention.npy"),
    )
    assert run(*args) == 0
    meta = fmt.validate_sample(tmp_path / "out" / "s")
    assert (meta["num_layers"], meta["num_heads"], meta["seq_len"]) == (LAYERS, HEADS, N)
    as_float32 = attention.astype(np.float32)
    for layer in range(LAYERS):
        assert np.array_equal(fmt.open_layer(tmp_path / "out" / "s", meta, layer), attention[layer].astype(np.float16))
        stored_mean = np.asarray(fmt.open_head_aggregate(tmp_path / "out" / "s", meta, layer, "mean"), np.float32)
        np.testing.assert_allclose(stored_mean, as_float32[layer].mean(0), rtol=2.0**-10, atol=1e-6)
        assert np.array_equal(
            fmt.open_head_aggregate(tmp_path / "out" / "s", meta, layer, "max"),
            as_float32[layer].max(0).astype(np.float16),
        )
    start, end = SPAN
    expected = as_float32[:, :, end + 1 :, start : end + 1].sum(-1).mean(-1)
    np.testing.assert_allclose(np.array(meta["text_to_image"]), expected, rtol=1e-5)
    assert meta["import"]["input_dtype"] == np.dtype(dtype).name


def test_model_type_finds_the_span_and_the_image_gives_the_grid(inputs: Path, tmp_path: Path) -> None:
    assert run(*import_args(inputs, tmp_path / "s", "--model-type", "qwen3-vl", "--model", "my-vlm")) == 0
    meta = fmt.validate_sample(tmp_path / "s")
    assert meta["image_grid"] == {"rows": ROWS, "cols": COLS, "start_idx": SPAN[0], "end_idx": SPAN[1]}
    tokens = meta["tokens"]
    assert [t["type"] for t in tokens[: SPAN[0]]] == ["special", "text", "text", "special"]
    assert all(t["type"] == "image" and t["text"] == "[IMG]" for t in tokens[SPAN[0] : SPAN[1] + 1])
    assert tokens[SPAN[0] + COLS + 2]["grid_pos"] == [1, 2]
    assert [t["text"] for t in tokens[SPAN[1] + 1 :]] == SUFFIX
    assert (meta["model"], meta["model_type"], meta["mode"]) == ("my-vlm", "qwen3-vl", "prefill")
    assert meta["prompt"] == "user\nWhere is the cat?\nassistant\n"  # the text tokens joined
    assert meta["image_size"] == meta["original_image_size"] == [320, 200]
    assert (tmp_path / "s" / meta["image_path"]).is_file()


def test_an_image_of_another_shape_gives_another_grid(inputs: Path, tmp_path: Path) -> None:
    """40 tokens over a tall image: 8 rows of 5, not 5 of 8."""
    Image.new("RGB", (200, 330)).save(tmp_path / "tall.png")
    assert run(*import_args(inputs, tmp_path / "s", "--image-span", *SPAN, image=str(tmp_path / "tall.png"))) == 0
    grid = fmt.read_meta(tmp_path / "s")["image_grid"]
    assert (grid["rows"], grid["cols"]) == (COLS, ROWS)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_adapter_names_its_image_placeholder(name: str) -> None:
    """--model-type works for every family only if each adapter says how its image tokens read."""
    placeholder = adapter_named(name).image_placeholder
    assert isinstance(placeholder, str) and placeholder.strip()


def test_the_qwen3_vl_placeholder_is_what_its_tokenizer_decodes(gqa_model: Path) -> None:
    adapter = adapter_named("qwen3-vl")
    processor = adapter.load_processor(str(gqa_model))
    assert processor.tokenizer.decode([processor.image_token_id]) == adapter.image_placeholder


@pytest.fixture(scope="module")
def workspace(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bad inputs beside one good imported sample, which every refused run must leave byte-identical."""
    root = tmp_path_factory.mktemp("import_refusals")
    assert run(*import_args(inputs, root / "out" / "kept", "--model-type", "qwen3-vl")) == 0
    np.save(root / "three_d.npy", np.zeros((2, N, N), np.float32))
    np.save(root / "not_square.npy", np.zeros((1, 1, N, N - 1), np.float32))
    np.save(root / "ints.npy", np.zeros((1, 1, N, N), np.int32))
    np.save(root / "bidirectional.npy", np.full((1, 1, N, N), 1 / N, np.float32))
    late_nan = causal_attention(2, 1, N)
    late_nan[1, 0, N - 1, 0] = np.nan  # found only while streaming, after layer 0 is written
    np.save(root / "nan.npy", late_nan)
    huge = causal_attention(1, 1, N)
    huge[0, 0, N - 1, 0] = 70_000.0  # finite in float32, infinite in float16
    np.save(root / "above_float16.npy", huge)
    negative = causal_attention(1, 1, N)
    negative[0, 0, 5, 0] = -0.25
    np.save(root / "negative.npy", negative)
    np.save(root / "surrogate_tokens.npy", np.array([*TEXTS[:-1], "bad \udcff"]))
    np.save(root / "short_tokens.npy", TEXTS[:-1])
    np.save(root / "object_tokens.npy", np.array(TEXTS, dtype=object), allow_pickle=True)
    np.save(root / "no_image_tokens.npy", [t.replace("<|image_pad|>", "x") for t in TEXTS])
    return root


def refusals(inputs: Path, workspace: Path) -> dict[str, tuple[list, str]]:
    new = workspace / "out" / "new"
    given = ["--image-span", *SPAN]
    return {
        "missing attention": (import_args(inputs, new, *given, attention="nope.npy"), "attention file not found"),
        "missing tokens": (import_args(inputs, new, *given, tokens="nope.npy"), "tokens file not found"),
        "missing image": (import_args(inputs, new, *given, image="nope.png"), "image not found"),
        "not 4-D": (
            import_args(inputs, new, *given, attention=str(workspace / "three_d.npy")),
            "expected [layers, heads, N, N]",
        ),
        "not square": (import_args(inputs, new, *given, attention=str(workspace / "not_square.npy")), "square"),
        "integer attention": (import_args(inputs, new, *given, attention=str(workspace / "ints.npy")), "int32"),
        "not causal": (import_args(inputs, new, *given, attention=str(workspace / "bidirectional.npy")), "not causal"),
        "NaN in the last layer": (import_args(inputs, new, *given, attention=str(workspace / "nan.npy")), "NaN"),
        "above float16": (import_args(inputs, new, *given, attention=str(workspace / "above_float16.npy")), "65,504"),
        "negative values": (import_args(inputs, new, *given, attention=str(workspace / "negative.npy")), "negative"),
        "lone surrogate token": (
            import_args(inputs, new, *given, tokens=str(workspace / "surrogate_tokens.npy")),
            "surrogate",
        ),
        "wrong token count": (
            import_args(inputs, new, *given, tokens=str(workspace / "short_tokens.npy")),
            f"{N - 1} tokens but the attention is {N} x {N}",
        ),
        "object tokens": (import_args(inputs, new, *given, tokens=str(workspace / "object_tokens.npy")), "dtype=str"),
        "span outside": (import_args(inputs, new, "--image-span", "4", str(N)), "not inside the sequence"),
        "span reversed": (import_args(inputs, new, "--image-span", "9", "4"), "START <= END"),
        "grid size": (import_args(inputs, new, *given, "--grid", "4x8"), "holds 32 tokens but the image span holds 40"),
        "grid spelling": (import_args(inputs, new, *given, "--grid", "four"), "ROWSxCOLS"),
        "grid not inferable": (import_args(inputs, new, "--image-span", "4", "40"), "cannot infer the grid"),
        "no span": (import_args(inputs, new), "--image-span"),
        "no placeholder": (
            import_args(inputs, new, "--model-type", "qwen3-vl", tokens=str(workspace / "no_image_tokens.npy")),
            "no <|image_pad|> tokens",
        ),
        "no tile labels": (
            import_args(inputs, new, "--model-type", "smolvlm"),
            "no <row_i_col_j> or <global-img> label",
        ),
        "unknown model type": (import_args(inputs, new, "--model-type", "llava-9"), "unknown --model-type"),
        "existing sample": (import_args(inputs, workspace / "out" / "kept", *given), "--overwrite"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing attention",
        "missing tokens",
        "missing image",
        "not 4-D",
        "not square",
        "integer attention",
        "not causal",
        "NaN in the last layer",
        "wrong token count",
        "above float16",
        "negative values",
        "lone surrogate token",
        "object tokens",
        "span outside",
        "span reversed",
        "grid size",
        "grid spelling",
        "grid not inferable",
        "no span",
        "no placeholder",
        "no tile labels",
        "unknown model type",
        "existing sample",
    ],
)
def test_bad_input_gives_one_clear_error_and_leaves_nothing(
    case: str, inputs: Path, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, mentions = refusals(inputs, workspace)[case]
    assert_refused(capsys, args, mentions, workspace)


def test_big_endian_float32_imports_as_its_values(inputs: Path, tmp_path: Path) -> None:
    source = np.load(inputs / "attention.npy")
    np.save(tmp_path / "big.npy", source.astype(">f4"))
    assert (
        run(*import_args(inputs, tmp_path / "s", "--model-type", "qwen3-vl", attention=str(tmp_path / "big.npy"))) == 0
    )
    meta = fmt.read_meta(tmp_path / "s")
    np.testing.assert_array_equal(fmt.open_layer(tmp_path / "s", meta, 0), source[0].astype(np.float16))


def test_byte_string_tokens_are_read_as_utf8(inputs: Path, tmp_path: Path) -> None:
    """np.save of a list of bytes gives an 'S' array; its texts are decoded, not shown as b'...'."""
    np.save(tmp_path / "tokens.npy", np.array([t.encode("utf-8") for t in TEXTS]))
    assert (
        run(*import_args(inputs, tmp_path / "s", "--model-type", "qwen3-vl", tokens=str(tmp_path / "tokens.npy"))) == 0
    )
    assert [t["text"] for t in fmt.read_meta(tmp_path / "s")["tokens"][SPAN[1] + 1 :]] == SUFFIX
