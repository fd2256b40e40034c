"""Reading Swift sources without a Swift toolchain, via tree-sitter's Swift grammar.

Two uses in tests/test_ios_harness.py: syntax errors in every .swift file under ios_harness/
(tree-sitter marks what it could not parse as ERROR nodes and what it had to invent as MISSING
nodes), and the Codable structs' JSON keys, read from the same parse so the harness's results
file cannot drift from benchmarks/results.schema.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import tree_sitter_swift
from tree_sitter import Language, Node, Parser, Tree

CODABLE_PROTOCOLS = {"Codable", "Encodable", "Decodable"}


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_swift.language()))


def parse(source: str | bytes) -> Tree:
    return _parser().parse(source.encode() if isinstance(source, str) else source)


@dataclass(frozen=True)
class SyntaxProblem:
    path: str
    line: int  # 1-based
    column: int  # 1-based
    kind: str  # "ERROR" (unparsable text) or "MISSING" (a token the parser had to assume)
    near: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.kind} near {self.near!r}"


def syntax_problems(source: str | bytes, path: str = "<snippet>") -> list[SyntaxProblem]:
    """Every ERROR and MISSING node, outermost first, with its 1-based position."""
    problems: list[SyntaxProblem] = []

    def visit(node: Node) -> None:
        if node.is_error or node.is_missing:
            text = node.text.decode(errors="replace") if node.text else ""
            near = text.splitlines()[0][:40] if text.strip() else node.type
            row, col = node.start_point
            problems.append(SyntaxProblem(path, row + 1, col + 1, "MISSING" if node.is_missing else "ERROR", near))
            if node.is_error:
                return  # one report per broken region is enough to find it
        for child in node.children:
            visit(child)

    root = parse(source).root_node
    visit(root)
    if root.has_error and not problems:  # has_error without a marked node: still a failure
        problems.append(SyntaxProblem(path, 1, 1, "ERROR", "unlocated parse error"))
    return problems


@dataclass(frozen=True)
class SwiftProperty:
    name: str
    type_text: str  # as written, e.g. "Double?" or "[String: String]"
    line: int

    @property
    def optional(self) -> bool:
        return self.type_text.endswith("?")

    @property
    def base_type(self) -> str:
        return self.type_text.rstrip("?").strip()


@dataclass
class CodableStruct:
    name: str
    path: str
    line: int
    properties: dict[str, SwiftProperty] = field(default_factory=dict)  # stored, non-static
    coding_keys: dict[str, str] | None = None  # case name -> JSON key, when CodingKeys exists

    @property
    def where(self) -> str:
        return f"{self.name} ({self.path}:{self.line})"

    def json_keys(self) -> dict[str, str]:
        """JSON key -> property name, as the synthesized Codable conformance would use them."""
        if self.coding_keys is None:
            return {name: name for name in self.properties}
        return {key: case for case, key in self.coding_keys.items()}


def _text(node: Node | None) -> str:
    return node.text.decode() if node is not None and node.text else ""


def _declaration_kind(node: Node) -> str:
    return _text(node.child_by_field_name("declaration_kind"))


def _inherits(node: Node) -> set[str]:
    return {_text(child.child_by_field_name("inherits_from")) for child in node.children if child.type == "inheritance_specifier"}


def _is_static(node: Node) -> bool:
    modifiers = next((c for c in node.children if c.type == "modifiers"), None)
    return modifiers is not None and any(_text(m) in {"static", "class"} for m in modifiers.children)


def _stored_properties(body: Node) -> list[SwiftProperty]:
    found: list[SwiftProperty] = []
    for child in body.children:
        if child.type != "property_declaration" or _is_static(child):
            continue
        if child.child_by_field_name("computed_value") is not None:
            continue
        pattern = child.child_by_field_name("name")
        annotation = next((c for c in child.children if c.type == "type_annotation"), None)
        type_node = annotation.child_by_field_name("name") if annotation is not None else None
        found.append(SwiftProperty(_text(pattern), _text(type_node), child.start_point[0] + 1))
    return found


def _string_literal(node: Node) -> str:
    if node.type != "line_string_literal" or any(c.type == "interpolated_expression" for c in node.children):
        raise ValueError(f"line {node.start_point[0] + 1}: raw value {_text(node)} is not a plain string")
    return "".join(_text(c) for c in node.children if c.type == "line_str_text")


def enum_cases(enum_node: Node) -> dict[str, str]:
    """Case name -> raw value (the case name itself when none is written), in source order."""
    body = enum_node.child_by_field_name("body")
    cases: dict[str, str] = {}
    for entry in body.children if body is not None else []:
        if entry.type != "enum_entry":
            continue
        last: str | None = None
        for index, child in enumerate(entry.children):
            name = entry.field_name_for_child(index)
            if name == "name":
                last = _text(child)
                cases[last] = last
            elif name == "raw_value" and last is not None:
                cases[last] = _string_literal(child)
    return cases


def _type_declarations(root: Node):
    """Every struct/class/enum declaration, nested ones included."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "class_declaration":
            yield node
        stack.extend(reversed(node.children))


def codable_structs(source: str | bytes, path: str = "<snippet>") -> dict[str, CodableStruct]:
    """Structs declared Codable/Encodable/Decodable in `source`, by name."""
    structs: dict[str, CodableStruct] = {}
    for node in _type_declarations(parse(source).root_node):
        if _declaration_kind(node) != "struct" or not (_inherits(node) & CODABLE_PROTOCOLS):
            continue
        name = _text(node.child_by_field_name("name"))
        body = node.child_by_field_name("body")
        struct = CodableStruct(name, path, node.start_point[0] + 1)
        for prop in _stored_properties(body):
            struct.properties[prop.name] = prop
        for child in body.children:
            if child.type == "class_declaration" and _text(child.child_by_field_name("name")) == "CodingKeys":
                struct.coding_keys = enum_cases(child)
        structs[name] = struct
    return structs


def find_enum(source: str | bytes, name: str) -> dict[str, str] | None:
    """Cases of the enum called `name` in `source`, or None when it is not declared there."""
    for node in _type_declarations(parse(source).root_node):
        if _declaration_kind(node) == "enum" and _text(node.child_by_field_name("name")) == name:
            return enum_cases(node)
    return None


def imports(source: str | bytes) -> list[str]:
    """Modules named by `import` declarations anywhere in the file (inside #if blocks too)."""
    found = []
    stack = [parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type == "import_declaration":
            found.append(_text(node).split()[-1])
        stack.extend(node.children)
    return sorted(found)


def top_level_outline(source: str | bytes) -> list[str]:
    """The file's top-level node types, comments left out, with directives as their text."""
    return [
        _text(node).strip() if node.type == "directive" else node.type
        for node in parse(source).root_node.children
        if node.type not in ("comment", "multiline_comment")
    ]


def availability_conditions(source: str | bytes) -> list[str]:
    """The text of every `#available(...)` condition (if/guard), in source order."""
    found = []
    stack = [parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type == "availability_condition":
            found.append(" ".join(_text(node).split()))
        stack.extend(reversed(node.children))
    return found


@dataclass(frozen=True)
class TimedSpan:
    """The statements from `let NAME = Stopwatch()` to the one reading `NAME.elapsedMs`."""

    path: str
    line: int  # 1-based, of the Stopwatch() declaration
    stopwatch: str
    problems: tuple[str, ...]


def _descendants(node: Node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _stopwatch_name(statement: Node) -> str | None:
    """NAME of `let NAME = Stopwatch()`, else None."""
    if statement.type != "property_declaration":
        return None
    value = statement.child_by_field_name("value")
    if value is None or value.type != "call_expression" or _text(value.children[0]) != "Stopwatch":
        return None
    return _text(statement.child_by_field_name("name"))


def _reads(node: Node, name: str, member: str) -> Node | None:
    """The first `name.member` navigation inside `node`."""
    for inner in _descendants(node):
        if inner.type == "navigation_expression" and _text(inner).replace(" ", "") == f"{name}.{member}":
            return inner
    return None


def _extended_names(read: Node) -> set[str]:
    """Names passed to every `withExtendedLifetime(NAME) { ... }` whose closure holds `read`."""
    names: set[str] = set()
    node = read.parent
    while node is not None:
        callee = node.children[0] if node.type == "call_expression" else None
        while callee is not None and callee.type == "call_expression":  # `f(x) { ... }` nests the call
            callee = callee.children[0]
        if callee is not None and _text(callee) == "withExtendedLifetime":
            arguments = next((c for c in _descendants(node) if c.type == "value_arguments"), None)
            if arguments is not None:
                names |= {_text(a) for a in arguments.children if a.type == "value_argument"}
        node = node.parent
    return names


def timed_spans(source: str | bytes, path: str = "<snippet>") -> list[TimedSpan]:
    """Every stopwatch span, with what in it may be released before the stopwatch is read.

    A value made inside the span must outlive the read: Swift may release a local right after
    its last use, and a discarded result (`_ = f()`) at once, so the release (an output's buffers,
    a handler's caches) would be timed. Each value declared in the span must be passed to a
    `withExtendedLifetime` whose closure reads the stopwatch; nothing may be discarded, and no
    value may live in a nested scope that closes inside the span."""
    spans: list[TimedSpan] = []
    for statements in (n for n in _descendants(parse(source).root_node) if n.type == "statements"):
        body = [c for c in statements.children if c.type not in ("comment", "multiline_comment")]
        for start, statement in enumerate(body):
            name = _stopwatch_name(statement)
            if name is None:
                continue
            problems: list[str] = []
            end = next((i for i in range(start + 1, len(body)) if _reads(body[i], name, "elapsedMs")), None)
            line = statement.start_point[0] + 1
            if end is None:
                spans.append(TimedSpan(path, line, name, (f"{path}:{line}: {name}.elapsedMs is never read",)))
                continue
            read = _reads(body[end], name, "elapsedMs")
            assert read is not None
            extended = _extended_names(read)
            for inner in body[start + 1 : end + 1]:
                for node in _descendants(inner):
                    where = f"{path}:{node.start_point[0] + 1}"
                    if node.type == "assignment" and _text(node.children[0]) == "_":
                        problems.append(f"{where}: `{_text(node)}` discards a value inside the timed span, so its release is timed")
                    if node.type == "property_declaration" and inner is not body[end]:
                        declared = _text(node.child_by_field_name("name"))
                        if node is not inner:
                            problems.append(f"{where}: {declared} lives in a scope that closes inside the timed span")
                        elif declared not in extended:
                            problems.append(
                                f"{where}: {declared} may be released before {name}.elapsedMs is read; read it inside withExtendedLifetime({declared})"
                            )
            spans.append(TimedSpan(path, line, name, tuple(problems)))
    return spans


Version = tuple[int, ...]
_DECLARATIONS = ("function_declaration", "class_declaration", "property_declaration", "init_declaration", "protocol_declaration", "typealias_declaration")


def _versions(text: str) -> dict[str, Version]:
    """{"iOS": (17, 4), "macOS": (14, 4)} from `#available(iOS 17.4, macOS 14.4, *)` or `@available(...)`."""
    import re

    return {os: tuple(int(p) for p in v.split(".")) for os, v in re.findall(r"\b(iOS|macOS)\s+(\d+(?:\.\d+)*)", text)}


def _covers(gate: dict[str, Version], needed: dict[str, Version]) -> bool:
    return all(os in gate and gate[os] >= version for os, version in needed.items())


def _gates_around(node: Node) -> list[dict[str, Version]]:
    """The OS versions guaranteed where `node` runs: enclosing `if #available` branches, earlier
    `guard #available` statements in an enclosing block, and `@available` declarations."""
    gates: list[dict[str, Version]] = []
    child, parent = node, node.parent
    while parent is not None:
        if parent.type == "if_statement":
            condition = next((c for c in parent.children if c.type == "availability_condition"), None)
            else_at = next((c.start_byte for c in parent.children if c.type == "else"), None)
            if condition is not None and child.start_byte > condition.end_byte and (else_at is None or child.start_byte < else_at):
                gates.append(_versions(_text(condition)))
        if parent.type == "statements":
            for sibling in parent.children:
                if sibling.start_byte >= child.start_byte:
                    break
                condition = next((c for c in sibling.children if c.type == "availability_condition"), None)
                if sibling.type == "guard_statement" and condition is not None:
                    gates.append(_versions(_text(condition)))
        if parent.type in _DECLARATIONS:
            modifiers = next((c for c in parent.children if c.type == "modifiers"), None)
            for attribute in modifiers.children if modifiers is not None else []:
                if attribute.type == "attribute" and _text(attribute).startswith("@available"):
                    gates.append(_versions(_text(attribute)))
        child, parent = parent, parent.parent
    return gates


@dataclass(frozen=True)
class NewerApiUse:
    path: str
    line: int
    name: str
    needs: str  # e.g. "iOS 17.4 / macOS 14.4"
    gated: bool

    def __str__(self) -> str:
        state = "gated" if self.gated else "NOT gated"
        return f"{self.path}:{self.line}: {self.name} needs {self.needs}: {state}"


def newer_api_uses(source: str | bytes, newer: dict[str, str], path: str = "<snippet>") -> list[NewerApiUse]:
    """Every use of an API in `newer` (name -> "iOS 17.4, macOS 14.4"), and whether an
    `if #available`, `guard #available` or `@available` around it guarantees that version.
    A name written ".member" counts only as a member access (`x.member`), so a local or a
    parameter of our own with the same name is not taken for the API."""
    uses = []
    for node in _descendants(parse(source).root_node):
        if node.type not in ("simple_identifier", "type_identifier"):
            continue
        name = _text(node)
        member = node.parent is not None and node.parent.type == "navigation_suffix"
        key = f".{name}" if member and f".{name}" in newer else name
        if key not in newer or (key == name and f".{name}" in newer):
            continue
        if node.parent is not None and node.parent.type in ("parameter", "value_argument_label"):
            continue  # a label of our own that happens to share the name, not the API
        needed = _versions(newer[key])
        gated = any(_covers(gate, needed) for gate in _gates_around(node))
        needs = " / ".join(f"{os} {'.'.join(map(str, v))}" for os, v in needed.items())
        uses.append(NewerApiUse(path, node.start_point[0] + 1, name, needs, gated))
    return uses
