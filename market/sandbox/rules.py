"""The sandbox's query rules (docs/API.md "Usage-controlled delivery"), checked on a parsed query.

A buyer's SQL is parsed with sqlglot (DuckDB dialect) and held to a whitelist: one
``SELECT`` from the table ``data``; outputs that are grouped ``dimension`` columns or the
aggregates ``COUNT(*)``, ``COUNT(DISTINCT col)``, ``SUM(measure)``, ``AVG(measure)``;
``WHERE`` and ``GROUP BY`` over ``dimension`` columns only, the ``WHERE`` a tree of
``AND``/``OR`` over comparisons of one column with constants; ``ORDER BY`` output columns
and a constant ``LIMIT``. Anything else — every other node sqlglot can produce — is
refused, naming the rule it breaks. ``entity``, ``key`` and ``hidden`` columns appear
nowhere in a query.

The query that runs is not the buyer's text but the one :func:`check` rebuilds from the
parsed tree (:class:`Checked`), each output renamed ``c0``, ``c1``, … and a count of the
group's distinct entities added for suppression. The database's own lock-down (no files,
no extensions, no settings) holds even if a rule here were wrong.
"""

from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

RULE_VERSION = "sandbox-rules/1"
MAX_SQL_CHARS = 10_000

# Node types a WHERE clause may hold besides columns and constants.
_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)
_CONSTANT_TYPES = {"DATE", "TIMESTAMP", "DECIMAL", "INT", "BIGINT", "DOUBLE", "VARCHAR", "TEXT", "BOOLEAN"}


class QueryNotAllowed(Exception):
    """A query the rules refuse; ``rule`` names the rule broken (its problem detail says which)."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True)
class Columns:
    """The roles of a table's columns, by lower-cased name."""

    roles: dict[str, str]

    def role(self, name: str) -> str | None:
        return self.roles.get(name.lower())

    @property
    def entities(self) -> list[str]:
        return [name for name, role in self.roles.items() if role == "entity"]


@dataclass(frozen=True)
class Checked:
    """An allowed query: its output names and the SQL that runs it (outputs ``c0``…, ``__entities``, ``__rows``)."""

    names: list[str]
    sql: str  # the grouped query, before suppression
    order: list[tuple[int, bool]]  # (output index, descending)
    limit: int | None
    aggregates: list[str | None]  # per output: "count", "count_distinct", "sum", "avg", or None (a dimension)
    measures: list[str | None]  # per output: the measure column summed or averaged


def check(sql: str, columns: Columns) -> Checked:
    """The query if every rule holds; otherwise :class:`QueryNotAllowed` naming the first rule broken."""
    if len(sql) > MAX_SQL_CHARS:
        raise QueryNotAllowed("too-long", f"a query is at most {MAX_SQL_CHARS} characters")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (ParseError, TokenError) as exc:
        raise QueryNotAllowed("syntax", f"the query does not parse: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryNotAllowed("one-statement", f"a query is exactly one statement; this is {len(statements)}")
    select = statements[0]
    if not isinstance(select, exp.Select):
        raise QueryNotAllowed("select-only", f"only SELECT is allowed, not {select.key.upper()}")
    _only_known_clauses(select)
    _from_data(select)
    groups = _group_by(select, columns)
    outputs = _outputs(select, columns, groups)
    where = select.args.get("where")
    if where is not None:
        _condition(where.this, columns)
    order = _order(select, outputs)
    limit = _limit(select)
    return _rebuild(select, columns, outputs, groups, order, limit)


@dataclass(frozen=True)
class _Output:
    name: str
    expression: exp.Expr  # without its alias
    alias: str | None
    aggregate: str | None
    measure: str | None


_ALLOWED_CLAUSES = {"expressions", "from", "where", "group", "order", "limit"}


def _only_known_clauses(select: exp.Select) -> None:
    for raw_key, value in select.args.items():
        key = raw_key.rstrip("_")
        if value in (None, [], False) or key in _ALLOWED_CLAUSES:
            continue
        rule = {"joins": "no-join", "with": "no-cte", "having": "no-having", "distinct": "no-distinct",
                "windows": "no-window", "qualify": "no-window", "offset": "no-offset",
                "laterals": "no-join"}.get(key, "only-select-from-where-group-order-limit")
        raise QueryNotAllowed(rule, f"{key.upper()} is not allowed in a sandbox query")
    for node in select.walk():
        if node is not select and isinstance(node, (exp.Select, exp.Subquery, exp.Union, exp.Query)):
            raise QueryNotAllowed("no-subquery", "subqueries, UNION and nested SELECTs are not allowed")
        if isinstance(node, exp.Window):
            raise QueryNotAllowed("no-window", "window functions are not allowed")
        if isinstance(node, exp.Join):
            raise QueryNotAllowed("no-join", "joins are not allowed")


def _from_data(select: exp.Select) -> None:
    source = select.args.get("from_") or select.args.get("from")
    if source is None:
        raise QueryNotAllowed("from-data", "a query reads FROM data")
    table = source.this
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        raise QueryNotAllowed("from-data", "a query reads FROM data: no table functions, files or subqueries")
    if table.name.lower() != "data" or table.args.get("db") or table.args.get("catalog"):
        raise QueryNotAllowed("from-data", f"the only table is data, not {table.sql(dialect='duckdb')}")
    if table.args.get("alias") is not None:
        raise QueryNotAllowed("from-data", "the table data takes no alias")
    for key, value in table.args.items():
        if key not in ("this", "db", "catalog", "alias") and value not in (None, [], False):
            raise QueryNotAllowed("from-data", f"the table data takes no {key.upper()}")


def _column(node: exp.Expr, columns: Columns, allowed: tuple[str, ...], where: str) -> str:
    """The lower-cased name of a plain column of an allowed role."""
    if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
        raise QueryNotAllowed(f"{where}-columns-only", f"{where.upper()} takes plain columns, not {node.sql(dialect='duckdb')}")
    if node.table and node.table.lower() != "data":
        raise QueryNotAllowed("from-data", f"the only table is data, not {node.table}")
    name = node.name.lower()
    role = columns.role(name)
    if role is None:
        raise QueryNotAllowed("unknown-column", f"the table has no column {node.name}")
    if role in ("entity", "key", "hidden"):
        raise QueryNotAllowed("protected-column", f"column {node.name} is {role}: it may appear nowhere in a query")
    if role not in allowed:
        need = " or ".join(allowed)
        raise QueryNotAllowed(f"{where}-role", f"column {node.name} is a {role}; {where.upper()} takes {need} columns")
    return name


def _group_by(select: exp.Select, columns: Columns) -> list[str]:
    group = select.args.get("group")
    if group is None:
        return []
    for key, value in group.args.items():
        if key != "expressions" and value not in (None, [], False):
            raise QueryNotAllowed("group-by-columns-only", "GROUP BY takes plain dimension columns only")
    return [_column(node, columns, ("dimension",), "group-by") for node in group.expressions]


def _outputs(select: exp.Select, columns: Columns, groups: list[str]) -> list[_Output]:
    outputs = []
    for item in select.expressions:
        alias = None
        node = item
        if isinstance(item, exp.Alias):
            alias, node = item.alias, item.this
        if isinstance(node, exp.Star):
            raise QueryNotAllowed("no-star", "SELECT * is not allowed: name dimensions and aggregates")
        if isinstance(node, exp.Column):
            name = _column(node, columns, ("dimension",), "select")
            if name not in groups:
                raise QueryNotAllowed("select-grouped", f"column {node.name} is output but not in GROUP BY")
            outputs.append(_Output(alias or node.name, node, alias, None, None))
            continue
        aggregate, measure = _aggregate(node, columns)
        outputs.append(_Output(alias or node.sql(dialect="duckdb"), node, alias, aggregate, measure))
    return outputs


def _aggregate(node: exp.Expr, columns: Columns) -> tuple[str, str | None]:
    if isinstance(node, exp.Count):
        argument = node.this
        if isinstance(argument, exp.Star) and not node.args.get("expressions"):
            return "count", None
        if isinstance(argument, exp.Distinct) and len(argument.expressions) == 1 and not argument.args.get("on"):
            _column(argument.expressions[0], columns, ("dimension", "measure"), "count-distinct")
            return "count_distinct", None
        raise QueryNotAllowed("aggregates", "COUNT takes * or DISTINCT one dimension or measure column")
    if isinstance(node, (exp.Sum, exp.Avg)) and not node.args.get("expressions"):
        measure = _column(node.this, columns, ("measure",), "aggregate")
        return ("sum" if isinstance(node, exp.Sum) else "avg"), measure
    shown = node.sql(dialect="duckdb")
    raise QueryNotAllowed("aggregates", f"outputs are dimensions or COUNT(*), COUNT(DISTINCT col), SUM(measure), "
                                        f"AVG(measure); not {shown[:80]}")


def _constant(node: exp.Expr) -> bool:
    if isinstance(node, exp.Paren):
        return _constant(node.this)
    if isinstance(node, exp.Literal) or isinstance(node, exp.Boolean):
        return True
    if isinstance(node, exp.Neg):
        return isinstance(node.this, exp.Literal) and node.this.is_number
    if isinstance(node, exp.Cast):  # DATE '2026-01-01', '12.5'::DECIMAL
        to = node.args.get("to")
        return (isinstance(node.this, exp.Literal) and isinstance(to, exp.DataType)
                and to.this.name in _CONSTANT_TYPES and not to.expressions)
    return False


def _condition(node: exp.Expr, columns: Columns) -> None:
    if isinstance(node, exp.Paren):
        return _condition(node.this, columns)
    if isinstance(node, (exp.And, exp.Or)):
        _condition(node.left, columns)
        _condition(node.right, columns)
        return None
    if isinstance(node, _COMPARISONS):
        left, right = node.left, node.right
        column, constant = (left, right) if isinstance(left, exp.Column) else (right, left)
        _column(column, columns, ("dimension",), "where")
        if not _constant(constant):
            raise QueryNotAllowed("where-constants", f"WHERE compares a column with a constant, not "
                                                     f"{constant.sql(dialect='duckdb')[:80]}")
        return None
    if isinstance(node, exp.In) and not node.args.get("query") and not node.args.get("unnest"):
        _column(node.this, columns, ("dimension",), "where")
        if not node.expressions or not all(_constant(e) for e in node.expressions):
            raise QueryNotAllowed("where-constants", "IN takes a list of constants")
        return None
    if isinstance(node, exp.Between):
        _column(node.this, columns, ("dimension",), "where")
        if not (_constant(node.args["low"]) and _constant(node.args["high"])):
            raise QueryNotAllowed("where-constants", "BETWEEN takes constants")
        return None
    raise QueryNotAllowed("where-operators", "WHERE takes =, <>, <, <=, >, >=, IN and BETWEEN joined by AND/OR; "
                                             f"not {node.sql(dialect='duckdb')[:80]}")


def _order(select: exp.Select, outputs: list[_Output]) -> list[tuple[int, bool]]:
    order = select.args.get("order")
    if order is None:
        return []
    result = []
    for item in order.expressions:
        if not isinstance(item, exp.Ordered):
            raise QueryNotAllowed("order-by-outputs", "ORDER BY names output columns")
        target = item.this
        index = next((i for i, out in enumerate(outputs)
                      if target == out.expression
                      or (isinstance(target, exp.Column) and not target.table
                          and target.name.lower() in {(out.alias or "").lower(), out.name.lower()})), None)
        if index is None:
            raise QueryNotAllowed("order-by-outputs", f"ORDER BY names output columns; {target.sql(dialect='duckdb')[:80]} "
                                                      "is not one")
        result.append((index, bool(item.args.get("desc"))))
    return result


def _limit(select: exp.Select) -> int | None:
    limit = select.args.get("limit")
    if limit is None:
        return None
    value = limit.expression
    if not (isinstance(value, exp.Literal) and value.is_int) or int(value.this) < 0:
        raise QueryNotAllowed("limit-constant", "LIMIT takes a whole number")
    return int(value.this)


def _quoted(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _rebuild(select: exp.Select, columns: Columns, outputs: list[_Output], groups: list[str],
             order: list[tuple[int, bool]], limit: int | None) -> Checked:
    """The grouped query that runs: the checked parts only, outputs renamed, entities counted."""
    items: list[exp.Expr] = []
    for i, out in enumerate(outputs):
        items.append(exp.alias_(_requalified(out.expression.copy()), f"c{i}", quoted=True))
    entities = columns.entities
    if not entities:
        counted: exp.Expr = exp.Count(this=exp.Star())
    else:
        target: exp.Expr = (exp.column(_quoted(entities[0])) if len(entities) == 1
                                  else exp.Tuple(expressions=[exp.column(_quoted(e)) for e in entities]))
        counted = exp.Count(this=exp.Distinct(expressions=[target]))
    items.append(exp.alias_(counted, "__entities", quoted=True))
    items.append(exp.alias_(exp.Count(this=exp.Star()), "__rows", quoted=True))
    query = exp.Select(expressions=items).from_(exp.Table(this=_quoted("data")))
    where = select.args.get("where")
    if where is not None:
        query = query.where(_requalified(where.this.copy()))
    if groups:
        query = query.group_by(*[exp.column(_quoted(g)) for g in groups])
    return Checked(names=[o.name for o in outputs], sql=query.sql(dialect="duckdb", comments=False), order=order, limit=limit,
                   aggregates=[o.aggregate for o in outputs], measures=[o.measure for o in outputs])


def _requalified(node: Any) -> Any:
    """Columns as quoted, unqualified, lower-case names (the loaded table's own)."""
    if isinstance(node, exp.Column):
        return exp.column(_quoted(node.name.lower()))
    for column in list(node.find_all(exp.Column)):
        column.replace(exp.column(_quoted(column.name.lower())))
    return node
