"""A griffe extension for the API pages: it makes mkdocstrings read the docstrings of
``landscape`` the way they are written (Google style as Napoleon reads it, with Sphinx
roles), instead of showing the markup literally:

- a Sphinx role (``:func:`hvp```, ``:class:`~landscape.io.Result```) becomes a
  cross-reference to the object's section of the API pages (``hvp`` inside
  ``landscape.hessian`` resolves to ``landscape.hessian.hvp``), shown as code; a target
  that no page documents (a private helper) shows as plain code;
- an ``Example:`` section is an examples section (as ``Examples:``), so its doctests
  render as code;
- ``x, y: text`` in an ``Args:`` section documents each of ``x`` and ``y``.

Loaded by ``mkdocs.yml`` (``extensions: [docs/_ext/griffe_roles.py]``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>[a-z]+):`(?P<tilde>~)?(?P<target>[^`<]+?)(?:\s*<(?P<real>[^>]+)>)?`"
)


def _members(obj: Any) -> dict:
    try:
        return obj.members
    except Exception:  # an alias that griffe cannot resolve
        return {}


def _scopes(obj: Any) -> list[Any]:
    """Where a name used in ``obj``'s docstring is looked up, innermost first; a
    private module's names are looked up in its public package first."""
    chain, cur = [], obj
    while cur is not None:
        if getattr(cur, "is_module", False) and cur.name.startswith("_"):
            if cur.parent is not None:
                chain.append(cur.parent)
        if getattr(cur, "is_class", False) or getattr(cur, "is_module", False):
            chain.append(cur)
        cur = cur.parent
    return chain


def _resolve(obj: Any, name: str, root: Any) -> str | None:
    name = name.strip().lstrip(".").removesuffix("()")
    first, _, rest = name.partition(".")
    if first == root.name:  # a full path
        cur = root
        for part in rest.split(".") if rest else []:
            cur = _members(cur).get(part)
            if cur is None:
                return None
        return name
    for scope in _scopes(obj):
        if first in _members(scope):
            return f"{scope.path}.{name}"
    return None


def _replace(obj: Any, root: Any, text: str) -> str:
    def one(m: re.Match) -> str:
        target = (m["real"] or m["target"]).strip()
        shown = m["target"].strip()
        if m["tilde"]:
            shown = shown.rsplit(".", 1)[-1]
        path = _resolve(obj, target, root)
        code = f"<code>{shown}</code>"
        if path is None:
            return code
        return f'<autoref identifier="{path}" optional>{code}</autoref>'

    return _ROLE.sub(one, text)


_SECTION = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")
_ARGS = ("Args", "Arguments", "Parameters", "Other Parameters", "Attributes")
_NAMES = re.compile(r"^(\s+)((?:\*{0,2}\w+\s*,\s*)+\*{0,2}\w+)\s*(\([^)]*\))?:(.*)$")


def _sections(text: str) -> str:
    """``Example:`` as ``Examples:``; ``a, b: text`` entries split into one per name."""
    out: list[str] = []
    lines = text.split("\n")
    section, indent, i = None, -1, 0
    while i < len(lines):
        line = lines[i]
        head = _SECTION.match(line)
        if head:
            section, indent = head[2], len(head[1])
            if section == "Example":
                line = f"{head[1]}Examples:"
            out.append(line)
            i += 1
            continue
        m = _NAMES.match(line) if section in _ARGS else None
        if m and len(m[1]) > indent:
            body = [m[4]]
            j = i + 1
            while j < len(lines) and (
                not lines[j].strip()
                or len(lines[j]) - len(lines[j].lstrip()) > len(m[1])
            ):
                body.append(lines[j])
                j += 1
            while len(body) > 1 and not body[-1].strip():
                j -= 1
                body.pop()
            for name in (n.strip() for n in m[2].split(",")):
                out.append(f"{m[1]}{name}{(' ' + m[3]) if m[3] else ''}:{body[0]}")
                out.extend(body[1:])
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _walk(obj: Any, root: Any, seen: set[int]) -> None:
    if id(obj) in seen or getattr(obj, "is_alias", False):
        return
    seen.add(id(obj))
    if obj.docstring is not None and ":" in obj.docstring.value:
        obj.docstring.value = _sections(_replace(obj, root, obj.docstring.value))
    for member in _members(obj).values():
        _walk(member, root, seen)


class SphinxRoles(griffe.Extension):
    """Turn Sphinx roles into cross-references once the package is loaded."""

    def on_package(self, *, pkg: Any, **kwargs: Any) -> None:
        """Rewrite every docstring of the package."""
        _walk(pkg, pkg, set())
