"""Validate JUnit XML against tests/fixtures/junit.xsd: with xmlschema when installed, else a small
reader of that XSD (declared elements, their attributes with use and type, child order and counts,
text only where the type allows it), enough for the schema's constructs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

XSD = Path(__file__).resolve().parents[2] / "fixtures" / "junit.xsd"
_NS = "{http://www.w3.org/2001/XMLSchema}"
_TYPES = {
    "xs:string": re.compile(r".*", re.S),
    "xs:int": re.compile(r"[+-]?\d+"),
    "xs:decimal": re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)"),
    "xs:dateTime": re.compile(r"-?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"),
}


@dataclass
class Decl:
    name: str
    attrs: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (type, required)
    # a sequence of groups; each group: (allowed child names, min, max); a choice is one group of many names
    sequence: list[tuple[frozenset[str], int, float]] = field(default_factory=list)
    text: bool = False


def _occurs(el: ET.Element) -> tuple[int, float]:
    hi = el.get("maxOccurs", "1")
    return int(el.get("minOccurs", "1")), float("inf") if hi == "unbounded" else float(hi)


def load(path: Path = XSD) -> dict[str, Decl]:
    decls: dict[str, Decl] = {}
    for el in ET.parse(path).getroot().findall(f"{_NS}element"):
        d = Decl(el.attrib["name"])
        decls[d.name] = d
        if el.get("type") in _TYPES:
            d.text = True
            continue
        ct = el.find(f"{_NS}complexType")
        if ct is None:
            raise ValueError(f"{d.name}: unsupported declaration")
        d.text = ct.get("mixed") == "true"
        for a in ct.findall(f"{_NS}attribute"):
            d.attrs[a.attrib["name"]] = (a.get("type", "xs:string"), a.get("use") == "required")
        seq = ct.find(f"{_NS}sequence")
        for part in [] if seq is None else list(seq):
            lo, hi = _occurs(part)
            if part.tag == f"{_NS}element":
                d.sequence.append((frozenset({part.attrib["ref"]}), lo, hi))
            elif part.tag == f"{_NS}choice":
                d.sequence.append((frozenset(c.attrib["ref"] for c in part.findall(f"{_NS}element")), lo, hi))
            else:
                raise ValueError(f"{d.name}: unsupported {part.tag}")
    return decls


def _check(el: ET.Element, decls: dict[str, Decl], where: str, errors: list[str]) -> None:
    d = decls.get(el.tag)
    here = f"{where}/{el.tag}"
    if d is None:
        errors.append(f"{here}: element not in the schema")
        return
    for name, value in el.attrib.items():
        if name not in d.attrs:
            errors.append(f"{here}: attribute {name!r} not allowed")
        elif not _TYPES[d.attrs[name][0]].fullmatch(value):
            errors.append(f"{here}: {name}={value!r} is not {d.attrs[name][0]}")
    for name, (_type, required) in d.attrs.items():
        if required and name not in el.attrib:
            errors.append(f"{here}: attribute {name!r} is required")
    children = list(el)
    if not d.text and (el.text or "").strip():
        errors.append(f"{here}: text not allowed")
    i = 0
    for allowed, lo, hi in d.sequence:
        n = 0
        while i < len(children) and children[i].tag in allowed and n < hi:
            n, i = n + 1, i + 1
        if n < lo:
            errors.append(f"{here}: wants at least {lo} of {sorted(allowed)}, has {n}")
    for extra in children[i:]:
        errors.append(f"{here}: {extra.tag!r} not allowed here (order or count)")
    for child in children:
        _check(child, decls, here, errors)


def validate(xml_text: str, path: Path = XSD) -> list[str]:
    """The problems of ``xml_text`` against the schema ([] when valid)."""
    try:
        import xmlschema  # type: ignore[import-not-found]
    except ImportError:
        errors: list[str] = []
        _check(ET.fromstring(xml_text), load(path), "", errors)
        return errors
    schema = xmlschema.XMLSchema(str(path))
    return [str(e) for e in schema.iter_errors(xml_text)]
