"""The Dataspace Protocol's JSON schemas (2025-1, vendored in ``spec/`` with their
licence), checked offline: every schema is registered under its ``$id``, so a ``$ref``
to another one is resolved here and nothing is fetched."""

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft201909Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT201909

SPEC = Path(__file__).resolve().parent / "spec"


@functools.cache
def _registry() -> tuple[Registry, dict[str, str]]:
    """The registry of every schema, and each schema's ``$id`` by its path under ``spec/``."""
    resources = []
    ids: dict[str, str] = {}
    for path in sorted(SPEC.rglob("*-schema.json")):
        # A few of the published schemas write a pointer without its first slash
        # (``…#definitions/X``); read as the pointer they mean (``…#/definitions/X``).
        schema = json.loads(path.read_text(encoding="utf-8").replace('#definitions/', '#/definitions/'))
        ids[path.relative_to(SPEC).as_posix()] = schema["$id"]
        resources.append((schema["$id"], Resource.from_contents(schema, default_specification=DRAFT201909)))
    return Registry().with_resources(resources), ids


def errors(instance: Any, schema: str) -> list[str]:
    """What is wrong with ``instance`` under ``schema`` (a path under ``spec/``, such as
    ``catalog/catalog-schema.json``): nothing when it validates."""
    registry, ids = _registry()
    validator = Draft201909Validator({"$ref": ids[schema]}, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(instance)]


def validate(instance: Any, schema: str) -> None:
    """Fail unless ``instance`` validates under ``schema``."""
    found = errors(instance, schema)
    assert not found, f"{schema}: {found}"


__all__ = ["SPEC", "errors", "validate"]
