"""The results-file contract between the Swift harness and benchmarks/results.schema.json.

`contract_mismatches` reads the Codable structs from Swift source text (tests/swift_source.py)
and lists every difference from the schema, both ways: keys, which keys may be null, JSON types,
and the compute-unit names. An empty list means the two sides agree.
"""

from __future__ import annotations

from typing import Any

from swift_source import CodableStruct, codable_structs, find_enum

# Swift struct -> where its object lives in the schema.
STRUCT_TO_SCHEMA = {
    "BenchmarkReport": ("top level", lambda s: s),
    "ToolInfo": ("tool", lambda s: s["properties"]["tool"]),
    "MachineInfo": ("machine", lambda s: s["properties"]["machine"]),
    "BenchmarkResult": ("result", lambda s: s["$defs"]["result"]),
    "LatencyStats": ("stats", lambda s: s["$defs"]["stats"]),
    "VisionRun": ("vision", lambda s: s["$defs"]["result"]["properties"]["vision"]),
    "ComputePlanSplit": ("compute_plan", lambda s: s["$defs"]["result"]["properties"]["compute_plan"]),
}
COMPUTE_UNITS_ENUM = "ComputeUnitSetting"
SWIFT_SCALARS = {"String": "string", "Int": "integer", "Double": "number", "Float": "number", "Bool": "boolean"}


def _swift_json_type(base_type: str) -> str:
    if base_type.startswith("[") and ":" in base_type:
        return "object"
    if base_type.startswith("["):
        return "array"
    if base_type == COMPUTE_UNITS_ENUM:
        return "string"
    return SWIFT_SCALARS.get(base_type, "object")  # another Codable struct


def _schema_json_types(node: dict[str, Any]) -> set[str]:
    if "$ref" in node:
        return {"object"}
    if "const" in node:
        return {"integer" if isinstance(node["const"], int) else "string"}
    if "enum" in node:
        return {"string" for v in node["enum"] if isinstance(v, str)}
    types = node.get("type", [])
    return {t for t in ([types] if isinstance(types, str) else types) if t != "null"}


def _schema_nullable(node: dict[str, Any]) -> bool:
    types = node.get("type", [])
    return "null" in ([types] if isinstance(types, str) else types) or None in node.get("enum", [])


def struct_mismatches(struct: CodableStruct, label: str, node: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    schema_keys = set(node["properties"])
    required = set(node.get("required", []))
    json_keys = struct.json_keys()
    for key in sorted(set(json_keys) - schema_keys):
        problems.append(f"{struct.where}: JSON key {key!r} is not in the schema's {label} object")
    for key in sorted(schema_keys - set(json_keys)):
        problems.append(f"{struct.where}: the schema's {label} key {key!r} has no Swift property")
    if struct.coding_keys is not None:
        for case in sorted(set(struct.coding_keys) - set(struct.properties)):
            problems.append(f"{struct.where}: CodingKeys case {case!r} names no stored property")
        for prop in sorted(set(struct.properties) - set(struct.coding_keys)):
            problems.append(f"{struct.where}: stored property {prop!r} has no CodingKeys case")
    for key in sorted(set(json_keys) & schema_keys):
        prop = struct.properties.get(json_keys[key])
        if prop is None:
            continue
        field = node["properties"][key]
        if prop.optional and key in required:
            problems.append(f"{struct.where}: {prop.name} is optional but the schema requires {key!r}")
        if not prop.optional and key not in required:
            problems.append(f"{struct.where}: {prop.name} is not optional but the schema lets {key!r} be null or absent")
        if prop.optional and not _schema_nullable(field):
            problems.append(f"{struct.where}: {prop.name} is optional but the schema's {key!r} does not accept null")
        swift_type = _swift_json_type(prop.base_type)
        allowed = _schema_json_types(field)
        # JSON Schema's "number" accepts integers too; nothing else converts.
        if swift_type not in allowed and not (swift_type == "integer" and "number" in allowed):
            problems.append(f"{struct.where}: {prop.name}: {prop.type_text} encodes as {swift_type}, the schema's {key!r} wants {sorted(allowed)}")
    return problems


def contract_mismatches(sources: dict[str, str], schema: dict[str, Any]) -> list[str]:
    """Differences between the Swift sources (path -> text) and the results schema."""
    structs: dict[str, CodableStruct] = {}
    compute_units: dict[str, str] | None = None
    for path, text in sources.items():
        structs.update(codable_structs(text, path))
        compute_units = find_enum(text, COMPUTE_UNITS_ENUM) or compute_units
    problems: list[str] = []
    for name, (label, locate) in STRUCT_TO_SCHEMA.items():
        if name not in structs:
            problems.append(f"no Codable struct {name} (the schema's {label} object) in the Swift sources")
            continue
        problems += struct_mismatches(structs[name], label, locate(schema))
    schema_units = {u for u in schema["$defs"]["result"]["properties"]["compute_units"]["enum"] if u is not None}
    if compute_units is None:
        problems.append(f"no enum {COMPUTE_UNITS_ENUM} in the Swift sources")
    elif set(compute_units.values()) != schema_units:
        problems.append(f"{COMPUTE_UNITS_ENUM} raw values {sorted(compute_units.values())} differ from the schema's compute_units {sorted(schema_units)}")
    return problems
