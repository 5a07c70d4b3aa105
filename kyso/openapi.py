"""The OpenAPI 3.1 document of ``/api/v1``, kept in ``schemas/openapi.yaml``.

The report schema is not copied into it: ``components.schemas.Report`` points at
``report.schema.json`` (the same file ``kyso verify --json`` is checked against) and is inlined
here, its ``$defs`` lifted into ``components.schemas``, so the served document has no external
references.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
OPENAPI_FILE = SCHEMA_DIR / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _rewrite_refs(node: Any, prefix: str) -> Any:
    """``#/$defs/x`` → ``#/components/schemas/{prefix}_x`` everywhere in ``node``."""
    if isinstance(node, dict):
        return {
            key: (
                f"#/components/schemas/{prefix}_{value.removeprefix('#/$defs/')}"
                if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
                else _rewrite_refs(value, prefix)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v, prefix) for v in node]
    return node


def _inline(document: dict[str, Any]) -> dict[str, Any]:
    """Replace component schemas that are ``$ref: file.json`` by that file's schema."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in list(schemas.items()):
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not (isinstance(ref, str) and ref.endswith(".json") and not ref.startswith("#")):
            continue
        external = json.loads((SCHEMA_DIR / Path(ref).name).read_text(encoding="utf-8"))
        definitions = external.pop("$defs", {})
        for key in ("$schema", "$id"):
            external.pop(key, None)
        schemas[name] = _rewrite_refs(external, name)
        for def_name, definition in definitions.items():
            schemas[f"{name}_{def_name}"] = _rewrite_refs(definition, name)
    return document


def load_openapi(path: Path = OPENAPI_FILE) -> dict[str, Any]:
    """The document as served: YAML parsed, the report schema inlined."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not an OpenAPI document")
    return _inline(copy.deepcopy(data))


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every operation of the document."""
    found = []
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                found.append((method.upper(), path, item[method]))
    return found


def form_fields(operation: dict[str, Any]) -> list[dict[str, Any]]:
    """The multipart fields of an operation, for the docs page."""
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("multipart/form-data", {}).get("schema", {})
    required = set(schema.get("required", []))
    fields = []
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type", "")
        if spec.get("format") == "binary":
            kind = "file"
        if "enum" in spec:
            kind = " | ".join(str(v) for v in spec["enum"])
        fields.append(
            {
                "name": name,
                "type": kind,
                "required": name in required,
                "description": spec.get("description", ""),
                "default": spec.get("default"),
            }
        )
    return fields
