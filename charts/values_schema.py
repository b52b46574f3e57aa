"""Write the chart's values.schema.json and docs/values.md from its described values.schema.yaml.

Every object of the YAML schema that lists ``properties`` is closed to unknown keys unless it
says otherwise, so a misspelt value fails ``helm install`` instead of being ignored.
``python charts/values_schema.py [--check]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent / "analysis-facility"


def closed(schema):
    if isinstance(schema, dict):
        schema = {key: closed(value) for key, value in schema.items()}
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    return schema


def _schema() -> dict:
    return yaml.safe_load((CHART / "values.schema.yaml").read_text())


def render() -> str:
    return json.dumps(closed(_schema()), indent=2) + "\n"


def _rows(schema: dict, path: str) -> list[str]:
    rows = []
    for key, child in schema.get("properties", {}).items():
        name = f"{path}.{key}" if path else key
        kind = child.get("type", "")
        kind = "/".join(kind) if isinstance(kind, list) else kind
        if "enum" in child:
            kind += " (" + ", ".join(map(str, child["enum"])) + ")"
        rows.append(f"| `{name}` | {kind} | {child.get('description', '')} |")
        rows += _rows(child, name)
        if child.get("type") == "array" and isinstance(child.get("items"), dict):
            rows += _rows(child["items"], f"{name}[]")
    return rows


def document() -> str:
    """The values reference, from the schema's descriptions."""
    lines = [
        "# Values of the analysis-facility chart",
        "",
        "Generated from `charts/analysis-facility/values.schema.yaml` by "
        "`python charts/values_schema.py`; defaults are in `values.yaml`. Keys not listed here "
        "are refused, except below `jupyterhub` and `dask-kubernetes-operator` (the upstream "
        "charts' own values).",
        "",
        "| key | type | description |",
        "| --- | --- | --- |",
        *_rows(_schema(), ""),
    ]
    return "\n".join(lines) + "\n"


OUTPUTS = {
    CHART / "values.schema.json": render,
    CHART.parent.parent / "docs" / "values.md": document,
}


def main(argv: list[str]) -> int:
    stale = [
        path for path, make in OUTPUTS.items() if not path.exists() or path.read_text() != make()
    ]
    if "--check" in argv:
        for path in stale:
            print(f"{path} is stale: run python charts/values_schema.py", file=sys.stderr)
        return 1 if stale else 0
    for path, make in OUTPUTS.items():
        path.write_text(make())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
