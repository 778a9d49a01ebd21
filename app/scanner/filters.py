"""Ignore filters: validated on save, compiled once per run, evaluated per message.

Regular expressions are bounded so that one filter cannot hang a worker, three ways: on save the
pattern is at most ``MAX_PATTERN_LENGTH`` characters and patterns whose repeated groups contain
another unbounded repetition or ambiguous alternatives (the ``(a+)+`` / ``(a|a)*`` family that
backtracks exponentially) are refused with a plain message; every value is cut to
``MAX_VALUE_LENGTH`` characters before matching; and matching runs in the ``regex`` engine with a
time limit (``MATCH_TIMEOUT`` seconds), because even "harmless" shapes such as ``.*a.*a.*b``
backtrack polynomially (a minute on 1,000 characters with the stdlib ``re``). A match that runs out
of time counts as no match: the message is stored as usual.
"""

from __future__ import annotations

import re
import re._constants as _sre_c  # type: ignore[import-not-found]  # the stdlib's own regex parser (no stubs):
import re._parser as _sre_parse  # type: ignore[import-not-found]  # a pattern's structure is checked before use
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import regex

from app.scanner.types import FilterRule, FilterVerdict, ParsedMessage

FIELDS = ("from", "from_domain", "to", "subject", "header")
MATCHES = ("equals", "contains", "regex")
STOPS = ("store", "tickets")
MAX_PATTERN_LENGTH = 200
MAX_VALUE_LENGTH = 1000
MAX_PLAIN_VALUE_LENGTH = 500
MATCH_TIMEOUT = 0.05
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,100}$")  # printable ASCII without ':' (RFC 5322 field name)


class FilterError(ValueError):
    """A filter rule that cannot be used; ``str(e)`` is a plain sentence for the form."""


@dataclass(frozen=True)
class CompiledRule:
    """A validated rule with its matcher ready: ``test(value) -> bool``."""

    rule: FilterRule
    test: Callable[[str], bool]


_REPEATS = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT, _sre_c.POSSESSIVE_REPEAT}
_UNBOUNDED = _sre_c.MAXREPEAT
# A parsed pattern: (opcode, argument) pairs, as the stdlib's parser gives them.
_Items = Iterable[tuple[Any, Any]]


def _first_literal(items: _Items) -> object:
    """The literal a branch alternative starts with, or "any" when it can start with many chars."""
    for op, av in items:
        if op is _sre_c.LITERAL:
            return av
        if op is _sre_c.SUBPATTERN:
            return _first_literal(av[-1])
        if op in (_sre_c.AT,):
            continue
        return "any"
    return "empty"


def _danger(items: _Items, inside_repeat: bool) -> str | None:
    """Walk a parsed pattern; say why it can backtrack catastrophically, or None."""
    for op, av in items:
        why = _danger_of(op, av, inside_repeat)
        if why:
            return why
    return None


def _danger_of(op: Any, av: Any, inside_repeat: bool) -> str | None:
    """The danger of one node of a parsed pattern (and what it contains), or None."""
    if op in _REPEATS:
        _lo, hi, body = av
        if inside_repeat and hi == _UNBOUNDED:
            return "a repeated group contains another unbounded repetition, such as (a+)+ or (.*)*"
        return _danger(body, inside_repeat or hi > 1)
    if op is _sre_c.SUBPATTERN:
        return _danger(av[-1], inside_repeat)
    if op is _sre_c.BRANCH:
        return _branch_danger(av[1], inside_repeat)
    if op in (_sre_c.ASSERT, _sre_c.ASSERT_NOT):
        return _danger(av[1], inside_repeat)
    if op is _sre_c.GROUPREF_EXISTS:
        return _first_danger((sub for sub in av[1:] if sub is not None), inside_repeat)
    return None  # literals, classes, anchors; atomic groups never backtrack into themselves


def _branch_danger(alternatives: list[_Items], inside_repeat: bool) -> str | None:
    if inside_repeat:
        starts = [_first_literal(alt) for alt in alternatives]
        if "any" in starts or "empty" in starts or len(set(starts)) != len(starts):
            return "a repeated group has alternatives that can match the same text, such as (a|ab)+"
    return _first_danger(alternatives, inside_repeat)


def _first_danger(parts: Iterable[_Items], inside_repeat: bool) -> str | None:
    for part in parts:
        why = _danger(part, inside_repeat)
        if why:
            return why
    return None


def _check_regex(pattern: str) -> regex.Pattern:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise FilterError(
            f"The regular expression is too long ({len(pattern)} characters); keep it under {MAX_PATTERN_LENGTH}."
        )
    try:
        # The stdlib parser gives the tree we inspect; the regex engine does the matching.
        parsed = _sre_parse.parse(pattern, re.IGNORECASE)
        compiled = regex.compile(pattern, regex.IGNORECASE | regex.V0)
    except (re.error, regex.error, RecursionError, OverflowError) as exc:
        raise FilterError(f"The regular expression is not valid: {exc}.") from None
    why = _danger(list(parsed), False)
    if why:
        raise FilterError(
            f"This regular expression could take too long to match: {why}. Rewrite it without nested repetition."
        )
    return compiled


def validate_rule(rule: FilterRule) -> None:
    """Raise FilterError with plain words when ``rule`` cannot be used; return None when it can."""
    _compile(rule)


def _compile(rule: FilterRule) -> CompiledRule:
    _check_shape(rule)
    value = rule.value or ""
    if rule.match == "regex":
        pattern = _check_regex(value)
        return CompiledRule(rule, lambda v: _search(pattern, v))
    if len(value) > MAX_PLAIN_VALUE_LENGTH:
        raise FilterError(f"The value is too long; keep it under {MAX_PLAIN_VALUE_LENGTH} characters.")
    needle = value.strip().casefold()
    if rule.field == "from_domain":
        needle = needle.lstrip("@")
    if rule.match == "equals":
        return CompiledRule(rule, lambda v: v.strip().casefold() == needle)
    return CompiledRule(rule, lambda v: needle in v[:MAX_VALUE_LENGTH].casefold())


def _check_shape(rule: FilterRule) -> None:
    """Field, match, what it stops, the header's name and a value: each must be usable."""
    if rule.field not in FIELDS:
        raise FilterError(f"Unknown field {rule.field!r}: choose one of {', '.join(FIELDS)}.")
    if rule.match not in MATCHES:
        raise FilterError(f"Unknown match {rule.match!r}: choose one of {', '.join(MATCHES)}.")
    if rule.stops not in STOPS:
        raise FilterError("Choose what the filter stops: storing the message, or only tickets.")
    if rule.field == "header":
        name = (rule.header_name or "").strip()
        if not name:
            raise FilterError("Give the name of the header to look at (for example List-Id).")
        if not _HEADER_NAME.match(name):
            raise FilterError("A header name is made of letters, digits and dashes, without spaces or a colon.")
    value = rule.value or ""
    if not value.strip():
        raise FilterError("The value to match is empty.")
    if any(ord(c) < 32 and c != "\t" for c in value):
        raise FilterError("The value contains control characters.")


def _search(pattern: regex.Pattern, value: str) -> bool:
    try:
        return pattern.search(value[:MAX_VALUE_LENGTH], timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        return False


def compile_rules(rules: list[FilterRule]) -> list[CompiledRule]:
    """Compile every rule (in order); raise FilterError on the first bad one, naming it."""
    out: list[CompiledRule] = []
    for rule in rules:
        try:
            out.append(_compile(rule))
        except FilterError as exc:
            label = f"Filter {rule.id}" if rule.id is not None else "A filter"
            raise FilterError(f"{label}: {exc}") from None
    return out


def _values(parsed: ParsedMessage, rule: FilterRule) -> list[str]:
    if rule.field == "from":
        return [parsed.from_addr or ""]
    if rule.field == "from_domain":
        return [(parsed.from_addr or "").rpartition("@")[2]]
    if rule.field == "to":
        return [*parsed.to, *parsed.cc]
    if rule.field == "subject":
        return [parsed.subject or ""]
    wanted = (rule.header_name or "").strip().lower()
    return [v for name, v in parsed.header_items if name == wanted]


def evaluate(parsed: ParsedMessage, compiled: list[CompiledRule]) -> FilterVerdict:
    """Apply the rules: a match with stops="store" means not stored (and so no ticket either);
    stops="tickets" means stored but never opening a ticket. ``rule_id`` is the first match's."""
    store = tickets = True
    first_id = None
    matched = False
    for c in compiled:
        if c.rule.stops == "tickets" and not tickets:
            continue  # already decided; only a "store" rule could change the verdict
        if any(c.test(v) for v in _values(parsed, c.rule)):
            if not matched:
                matched, first_id = True, c.rule.id
            tickets = False
            if c.rule.stops == "store":
                store = False
                break
    return FilterVerdict(store=store, tickets=tickets, rule_id=first_id)
