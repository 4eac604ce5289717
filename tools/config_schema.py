"""Print the JSON Schema of the whole `aimesh:` config namespace (docs/config.schema.json).

Pulumi's project schema (Pulumi.yaml) types only scalars and arrays of scalars; this schema,
generated from settings.py, also covers the list-of-object keys (models, integrations, ...).
Editors that understand JSON Schema can use it for Pulumi.<stack>.yaml `config:` values.
"""

from __future__ import annotations

import json

from aimesh.settings import Settings


def schema() -> dict[str, object]:
    document = Settings.model_json_schema(by_alias=True, mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "aimesh stack configuration (keys of the `aimesh:` namespace)"
    return document


def main() -> None:
    print(json.dumps(schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
