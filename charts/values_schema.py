"""Write the chart's values.schema.json from its described values.schema.yaml.

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


def render() -> str:
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    return json.dumps(closed(schema), indent=2) + "\n"


def main(argv: list[str]) -> int:
    target = CHART / "values.schema.json"
    if "--check" in argv:
        if not target.exists() or target.read_text() != render():
            print(f"{target} is stale: run python charts/values_schema.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
