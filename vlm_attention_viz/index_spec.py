"""Index lists given on the command line: `all`, `lastK` or a comma list such as `0,5,-1` (negative counts from the
end). --vision-layers names vision blocks with them, --layers and --heads the LLM layers and heads a sample keeps
(with --store, the storage profile: sample_format.STORAGE_PROFILES)."""

from __future__ import annotations

import re
from typing import NamedTuple

from . import sample_format as fmt
from .errors import UserError

_SPEC = re.compile(r"all|last[1-9][0-9]*|-?[0-9]+(,-?[0-9]+)*")


class IndexKind(NamedTuple):
    flag: str  # e.g. "--layers"
    unit: str  # what one index names, e.g. "layer"
    owner: str  # what holds them, e.g. "the model"


def spec_help(unit: str) -> str:
    return f"'all', 'lastK' (the last K {unit}s, K >= 1) or a comma list of {unit} indices such as '0,5,-1' (negative counts from the end)"


def check_index_spec(spec: str, kind: IndexKind) -> None:
    """The syntax alone, so a typo is refused before the model loads."""
    if not _SPEC.fullmatch(spec.replace(" ", "")):
        raise UserError(f"{kind.flag} {spec!r} is malformed; use {spec_help(kind.unit)}")


def resolve_index_spec(spec: str, count: int, kind: IndexKind) -> list[int]:
    """The indices a spec names, ascending and unique, checked against the `count` there are."""
    check_index_spec(spec, kind)
    spec = spec.replace(" ", "")
    if spec == "all":
        return list(range(count))
    if spec.startswith("last"):
        wanted = int(spec[4:])
        if wanted > count:
            raise UserError(f"{kind.flag} {spec}: {kind.owner} has only {count} {kind.unit}s")
        return list(range(count - wanted, count))
    indices = [int(part) for part in spec.split(",")]
    outside = [i for i in indices if not -count <= i < count]
    if outside:
        raise UserError(
            f"{kind.flag} {spec}: {kind.unit} {outside[0]} is out of range; {kind.owner} has {count} {kind.unit}s (0..{count - 1}, or -{count}..-1 from the end)"
        )
    return sorted({i % count for i in indices})


LAYERS = IndexKind("--layers", "layer", "the model")
HEADS = IndexKind("--heads", "head", "each layer")


def check_storage_flags(store: str, layers: str | None, heads: str | None) -> None:
    """--store, --layers and --heads as far as they can be checked without the model's config."""
    if store not in fmt.STORAGE_PROFILES:
        raise UserError(f"unknown --store {store!r}; choose {', '.join(fmt.STORAGE_PROFILES)}")
    for spec, kind in ((layers, LAYERS), (heads, HEADS)):
        if spec is not None:
            check_index_spec(spec, kind)


def resolve_storage(store: str, layers: str | None, heads: str | None, num_layers: int, num_heads: int) -> fmt.Storage:
    """What a sample keeps, once the model's layers and heads are known."""
    check_storage_flags(store, layers, heads)
    return fmt.Storage(
        store,
        tuple(resolve_index_spec(layers or "all", num_layers, LAYERS)),
        tuple(resolve_index_spec(heads or "all", num_heads, HEADS)),
        num_layers,
        num_heads,
    )
