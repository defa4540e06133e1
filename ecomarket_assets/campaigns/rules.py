"""A small, safe boolean language for audience rules over profile columns.

Marketing writes rules such as `churn_band == "high" and predicted_clv > 50`.
They are parsed with `ast` and only a whitelist of node types is accepted, then
evaluated by a tiny interpreter over pandas Series: no `eval`, no calls, no
attribute access, so a rule in a YAML file can never run code.

NA semantics: a comparison where either side is missing is False, and `not`
negates that result, so `not (x > 5)` is True where x is NaN. `x == None` and
`x != None` are the exceptions: they test for a missing / present value.

Numbers: a numeric literal may not exceed MAX_LITERAL (1e15) in magnitude, so
`orders + 9223372036854775807 > 0` is refused when the rule is parsed. Arithmetic
runs in float64 (integer columns are converted first), so it never wraps around
like int64 would; a result that is not finite although its inputs were (e.g.
`orders * 1e15 * ... > 1` past 1.8e308) raises RuleError ("... overflows ...")
instead of selecting the wrong people. Dividing a column by zero keeps pandas'
inf / NaN (NaN compares False); dividing two literals by zero is an error.
"""

from __future__ import annotations

import ast
import difflib
import functools
import operator
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MAX_RULE_LENGTH = 2000
MAX_LITERAL = 1e15  # largest magnitude of a number written in a rule; exact in float64 (below 2**53)
TRUE_WORDS = {"true": True, "false": False}  # YAML habit: lower-case booleans

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Call: "function calls are", ast.Attribute: "attribute access is", ast.Subscript: "indexing is",
    ast.Lambda: "lambdas are", ast.ListComp: "comprehensions are", ast.SetComp: "comprehensions are",
    ast.DictComp: "comprehensions are", ast.GeneratorExp: "comprehensions are", ast.IfExp: "if/else expressions are",
    ast.NamedExpr: "assignments are", ast.Dict: "dicts are", ast.Set: "sets are", ast.JoinedStr: "f-strings are",
}
_OPERATOR_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Mod: "%", ast.FloorDiv: "//", ast.Pow: "**", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
    ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.UAdd: "+", ast.Is: "is", ast.IsNot: "is not",
}
_OPERATOR_HINTS: dict[str, str] = {"&": "use `and`", "|": "use `or`", "~": "use `not`", "is": "use `==`", "is not": "use `!=`"}
_CONSTANT_TYPES = (bool, int, float, str, type(None))
ALLOWED = "columns, numbers, strings, True/False/None, comparisons, `in [...]`, and/or/not and + - * /"


class RuleError(ValueError):
    """A rule that cannot be parsed, is not allowed, or cannot be evaluated on a frame."""


@dataclass(frozen=True)
class Rule:
    text: str
    names: frozenset[str]

    def evaluate(self, frame: pd.DataFrame) -> pd.Series:
        """True for the rows the rule selects; missing values never select a row by accident."""
        missing = sorted(self.names - set(frame.columns))
        if missing:
            raise RuleError(f"rule {self.text!r} needs missing column(s): {', '.join(missing)}")
        columns = {name: frame[name].reset_index(drop=True) for name in self.names}
        try:
            tree = _checked_tree(self.text)
            selected = _Evaluator(columns, len(frame), _clean_source(self.text)).condition(tree.body)
        except RecursionError:
            raise RuleError(f"rule {self.text[:40]!r}... is too deeply nested to evaluate") from None
        except OverflowError:  # defensive: arithmetic is float64 and checked, literals are bounded
            raise RuleError(f"rule {_shorten(self.text)!r} overflows on this data") from None
        return pd.Series(selected, index=frame.index, dtype=bool)


def parse_rule(text: str, allowed_columns: Collection[str] | None = None) -> Rule:
    """Parse and whitelist-check a rule; with `allowed_columns`, unknown names are errors with suggestions."""
    if not isinstance(text, str):
        raise RuleError(f"a rule must be a string, got {type(text).__name__}")
    names = _names(_checked_tree(text))
    if allowed_columns is not None:
        allowed = list(allowed_columns)
        unknown = sorted(names - set(allowed))
        if unknown:
            raise RuleError(f"unknown column{'s' if len(unknown) > 1 else ''} " + ", ".join(_suggest(n, allowed) for n in unknown))
    return Rule(text=text, names=names)


def _suggest(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=3)
    hint = " or ".join(repr(c) for c in close)
    return f"{name!r} (did you mean {hint}?)" if close else repr(name)


def _names(tree: ast.Expression) -> frozenset[str]:
    return frozenset(node.id for node in ast.walk(tree) if isinstance(node, ast.Name))


@functools.lru_cache(maxsize=1024)
def _checked_tree(text: str) -> ast.Expression:
    """Parse once per distinct text; raises RuleError for anything outside the whitelist."""
    source = text.strip()
    if not source:
        raise RuleError("empty rule; write a condition such as `orders >= 1`, or `True` for everyone")
    if len(source) > MAX_RULE_LENGTH:
        raise RuleError(f"rule is longer than {MAX_RULE_LENGTH} characters")
    source = _clean_source(source)
    try:
        tree = _TrueWords().visit(ast.parse(source, mode="eval"))
        _Checker(source).condition(tree.body)
    except SyntaxError as exc:
        raise RuleError(_syntax_message(source, exc)) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        if isinstance(exc, RuleError):
            raise
        raise RuleError(f"rule is too deeply nested or malformed ({type(exc).__name__})") from None
    return tree


def _clean_source(text: str) -> str:
    """The text the rule is parsed from (node positions refer to it)."""
    return text.strip().replace("\r\n", " ").replace("\n", " ")  # YAML block scalars keep newlines


def _syntax_message(source: str, exc: SyntaxError) -> str:
    column = exc.offset or 0
    where = f"at column {column} near `{source[column - 1:column + 9]}`" if 0 < column <= len(source) else "at the end of the rule"
    hint = "; use == to compare" if re.search(r"(?<![=!<>])=(?!=)", source) else ""
    return f"syntax error {where}: {exc.msg}{hint}"


class _TrueWords(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in TRUE_WORDS:
            return ast.copy_location(ast.Constant(TRUE_WORDS[node.id]), node)
        return node


@dataclass
class _Checker:
    """Whitelist walk. A node is a condition (bool per row), a value (number/string per row) or a Name (either)."""

    source: str

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or type(node).__name__

    def fail(self, node: ast.AST, what: str) -> RuleError:
        return RuleError(f"{what} not allowed in rules (found `{self.segment(node)}`); use {ALLOWED}")

    def bad_operator(self, node: ast.AST, op: ast.AST) -> RuleError:
        symbol = _OPERATOR_SYMBOLS.get(type(op), type(op).__name__)
        hint = _OPERATOR_HINTS.get(symbol)
        return RuleError(f"operator `{symbol}` is not allowed in rules (found `{self.segment(node)}`)"
                         + (f"; {hint} instead" if hint else f"; use {ALLOWED}"))

    def condition(self, node: ast.AST) -> None:
        match node:
            case ast.BoolOp(values=values):  # only And / Or exist
                for value in values:
                    self.condition(value)
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                self.condition(operand)
            case ast.Compare():
                self.compare(node)
            case ast.Name() | ast.Constant(value=bool()):
                self.value(node)
            case ast.Constant() | ast.BinOp() | ast.UnaryOp(op=ast.USub()):
                self.value(node)
                raise RuleError(f"`{self.segment(node)}` is a value, not a condition; compare it, e.g. `orders >= 1`")
            case _:
                self.value(node)  # raises: nothing else is a value either

    def value(self, node: ast.AST) -> None:
        match node:
            case ast.Name(id=name):
                if name.startswith("__"):
                    raise self.fail(node, "dunder names are")
            case ast.Constant(value=constant):
                if not isinstance(constant, _CONSTANT_TYPES):
                    raise self.fail(node, f"{type(constant).__name__} constants are")
                self.literal_size(node, constant)
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                self.number(operand)
            case ast.BinOp(op=op, left=left, right=right):
                if type(op) not in _ARITHMETIC:
                    raise self.bad_operator(node, op)
                self.number(left)
                self.number(right)
            case ast.BoolOp() | ast.Compare() | ast.UnaryOp(op=ast.Not()):
                raise RuleError(f"`{self.segment(node)}` is a condition where a value is expected; "
                                "combine conditions with and/or/not")
            case ast.UnaryOp(op=op):
                raise self.bad_operator(node, op)
            case ast.List() | ast.Tuple():
                raise self.fail(node, "lists outside `in [...]` / `not in [...]` are")
            case _:
                raise self.fail(node, _FORBIDDEN.get(type(node), f"{type(node).__name__} expressions are"))

    def literal_size(self, node: ast.AST, constant: Any) -> None:
        """Huge literals would overflow int64 columns or float64 arithmetic: refuse them up front."""
        if isinstance(constant, int | float) and not isinstance(constant, bool) and not abs(constant) <= MAX_LITERAL:
            limit = f"{MAX_LITERAL:.0e}".replace("e+", "e")
            raise RuleError(f"number `{_shorten(self.segment(node), 40)}` is too large for a rule; "
                            f"numbers must lie between -{limit} and {limit} (MAX_LITERAL)")

    def number(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or not isinstance(node.value, int | float)):
            raise self.fail(node, "arithmetic on non-numbers is")
        self.value(node)

    def compare(self, node: ast.Compare) -> None:
        self.value(node.left)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple):
                    raise RuleError(f"`in` needs a literal list such as `[\"a\", \"b\"]` (found `{self.segment(right)}`)")
                for element in right.elts:
                    if _literal(element) is _NOT_LITERAL:
                        raise self.fail(element, "only constants inside `in [...]`; other elements are")
                    self.literal_size(element, _literal(element))
            elif type(op) in _COMPARE:
                self.value(right)
            else:
                raise self.bad_operator(node, op)


_NOT_LITERAL = object()


def _literal(node: ast.AST) -> Any:
    """The constant a list element stands for (negative numbers included), or _NOT_LITERAL."""
    if isinstance(node, ast.Constant) and isinstance(node.value, _CONSTANT_TYPES):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, int | float) and not isinstance(node.operand.value, bool):
        return -node.operand.value
    return _NOT_LITERAL


def _notna(value: Any, n: int) -> np.ndarray:
    if isinstance(value, pd.Series):
        return value.notna().to_numpy(dtype=bool)
    return np.full(n, not pd.isna(value))


def _finite(value: Any, n: int) -> np.ndarray:
    """Per row: is the value a finite number (missing counts as not finite)."""
    if isinstance(value, pd.Series):
        return np.isfinite(value.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.full(n, bool(np.isfinite(value)))


def _nonzero(value: Any, n: int) -> np.ndarray:
    if isinstance(value, pd.Series):
        return value.to_numpy(dtype=np.float64, na_value=np.nan) != 0
    return np.full(n, bool(value != 0))


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_numeric(value: Any) -> bool:
    if isinstance(value, pd.Series):
        return pd.api.types.is_numeric_dtype(value.dtype) and not pd.api.types.is_bool_dtype(value.dtype)
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class _Evaluator:
    """Conditions come back as numpy bool arrays of length n; values as Series (RangeIndex) or scalars."""

    columns: dict[str, pd.Series]
    n: int
    source: str = ""  # the rule text, for error messages

    def condition(self, node: ast.AST) -> np.ndarray:
        match node:
            case ast.BoolOp(op=op, values=values):
                combine = np.logical_and if isinstance(op, ast.And) else np.logical_or
                return functools.reduce(combine, (self.condition(v) for v in values))
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return ~self.condition(operand)
            case ast.Compare():
                return self.compare(node)
            case ast.Constant(value=bool() as flag):
                return np.full(self.n, flag)
            case ast.Name(id=name):
                return _flag_column(name, self.columns[name])
        raise RuleError(f"not a condition: {ast.dump(node)}")  # unreachable after _Checker

    def value(self, node: ast.AST) -> Any:
        match node:
            case ast.Name(id=name):
                return self.columns[name]
            case ast.Constant(value=constant):
                return constant
            case ast.UnaryOp(op=op, operand=operand):
                operand_value = self.numeric(operand)
                return -operand_value if isinstance(op, ast.USub) else operand_value
            case ast.BinOp(op=op, left=left, right=right):
                return self.arithmetic(node, op, self.numeric(left), self.numeric(right))
        raise RuleError(f"not a value: {ast.dump(node)}")  # unreachable after _Checker

    def segment(self, node: ast.AST) -> str:
        return _shorten(ast.get_source_segment(self.source, node) or ast.unparse(node))

    def arithmetic(self, node: ast.BinOp, op: ast.operator, left: Any, right: Any) -> Any:
        """float64 arithmetic: never wraps; a non-finite result from finite inputs is an overflow error."""
        if isinstance(op, ast.Div) and not isinstance(left, pd.Series) and not isinstance(right, pd.Series) and right == 0:
            raise RuleError("division by zero in rule")
        try:
            with np.errstate(all="ignore"):
                result = _ARITHMETIC[type(op)](left, right)
        except ZeroDivisionError:
            raise RuleError("division by zero in rule") from None
        except (OverflowError, FloatingPointError):
            raise RuleError(f"arithmetic `{self.segment(node)}` overflows") from None
        finite_in = _finite(left, self.n) & _finite(right, self.n)
        if isinstance(op, ast.Div):  # x / 0 on a column stays inf / NaN, as pandas gives it
            finite_in &= _nonzero(right, self.n)
        overflowed = finite_in & ~_finite(result, self.n)
        if overflowed.any():
            raise RuleError(f"arithmetic `{self.segment(node)}` overflows (beyond ±1.8e308) for "
                            f"{int(overflowed.sum())} row(s); keep the numbers in the rule smaller")
        return result

    def numeric(self, node: ast.AST) -> Any:
        """An arithmetic operand as float64: a float64 Series (missing -> NaN) or a numpy float64 scalar."""
        value = self.value(node)
        if not _is_numeric(value):
            name = node.id if isinstance(node, ast.Name) else repr(value)
            raise RuleError(f"arithmetic needs numbers, but {name} is not numeric")
        if isinstance(value, pd.Series):
            if value.dtype == np.float64:
                return value
            return pd.Series(value.to_numpy(dtype=np.float64, na_value=np.nan), index=value.index)
        return np.float64(value)

    def compare(self, node: ast.Compare) -> np.ndarray:
        result = np.ones(self.n, dtype=bool)
        left = self.value(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                assert isinstance(right_node, ast.List | ast.Tuple)
                result &= self.membership(left, [_literal(e) for e in right_node.elts], isinstance(op, ast.NotIn))
                continue
            right = self.value(right_node)
            result &= self.compare_pair(op, left, right)
            left = right
        return result

    def membership(self, left: Any, options: list[Any], negate: bool) -> np.ndarray:
        series = left if isinstance(left, pd.Series) else pd.Series([left] * self.n, dtype=object)
        hit = series.isin(options).to_numpy(dtype=bool, na_value=False)
        return ~hit & _notna(series, self.n) if negate else hit

    def compare_pair(self, op: ast.cmpop, left: Any, right: Any) -> np.ndarray:
        if (left is None or right is None) and isinstance(op, ast.Eq | ast.NotEq):
            present = _notna(right if left is None else left, self.n)
            return ~present if isinstance(op, ast.Eq) else present
        valid = _notna(left, self.n) & _notna(right, self.n)
        out = np.zeros(self.n, dtype=bool)
        if not valid.any():
            return out
        pick = (lambda v: v[valid] if isinstance(v, pd.Series) else v)  # noqa: E731
        try:
            raw = _COMPARE[type(op)](pick(left), pick(right))
        except TypeError as exc:
            raise RuleError(f"cannot compare these values: {exc}") from None
        except OverflowError:
            raise RuleError("comparison overflows: a number is too large for the column") from None
        if isinstance(raw, pd.Series):
            out[valid] = raw.to_numpy(dtype=bool, na_value=False)
        else:
            out[valid] = bool(raw)
        return out


def _flag_column(name: str, series: pd.Series) -> np.ndarray:
    """A bare column used as a condition must hold True/False; anything else is ambiguous."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=bool, na_value=False)
    present = series.dropna()
    if series.dtype == object and all(isinstance(v, bool | np.bool_) for v in present):
        return series.map(lambda v: v is True or v is np.True_).to_numpy(dtype=bool)
    raise RuleError(f"column {name!r} is not true/false; compare it instead, e.g. `{name} > 0` or `{name} == \"x\"`")
