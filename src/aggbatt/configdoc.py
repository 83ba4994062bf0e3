"""Generate docs/configuration.md from the config model and the comments of config.toml.

``python -m aggbatt.configdoc config.toml > docs/configuration.md``; a test fails when the
committed page differs, so the reference can never drift from the model.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from aggbatt.config import Config


def _comments(toml_text: str) -> dict[str, str]:
    """The comment block above each key (or commented-out key), by dotted key."""
    found: dict[str, str] = {}
    section, after_key = "", False
    block: list[str] = []
    for line in toml_text.splitlines():
        stripped = line.strip()
        key = re.match(r"^#?\s*([a-z_]+) = ", stripped)
        if m := re.match(r"^\[([a-z_.]+)\]", stripped):
            section, block, after_key = m.group(1) + ".", [], False
        elif key:
            # keys right under one comment block share it
            found[section + key.group(1)] = " ".join(block)
            after_key = True
        elif stripped.startswith("#"):
            if after_key:
                block, after_key = [], False
            block.append(stripped.lstrip("#").strip())
        else:
            block, after_key = [], False
    return found


def _range(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {value:g}")
    return ", ".join(parts)


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type(args[0])
    if origin in (Union, UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is Literal:
        return " or ".join(f'"{a}"' for a in args)
    if origin is list:
        return f"list of {_type(args[0])}"
    if annotation is type(None):
        return "unset"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def render(toml_text: str) -> str:
    comments = _comments(toml_text)
    lines = [
        "# Configuration reference",
        "",
        "Generated from the config model (`src/aggbatt/config.py`) and the comments of the",
        "default `config.toml` by `python -m aggbatt.configdoc config.toml`. Do not edit by hand.",
        "Validation beyond the ranges: lists that are interpolated must be in ascending order and",
        "as long as their factor lists; `charge_voltage_per_month` needs 12 values; every per-cell",
        "voltage must lie in 1.5..4.5 V; `min_cell_voltage` must be below `max_cell_voltage`.",
    ]

    def section(model: type[BaseModel], prefix: str) -> None:
        rows = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                continue
            key = prefix + name
            doc = comments.get(key, "").replace("|", "\\|")
            rng = _range(field)
            rows.append(f"| `{name}` | {_type(ann)} | `{_default(field)}` | {rng} | {doc} |")
        if rows:
            lines.extend(["", f"## [{prefix.rstrip('.')}]", ""])
            lines.append("| key | type | default | range | meaning |")
            lines.append("|---|---|---|---|---|")
            lines.extend(rows)
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                section(ann, f"{prefix}{name}.")

    section(Config, "")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "config.toml")
    sys.stdout.write(render(path.read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
