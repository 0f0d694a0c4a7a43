"""Statements compiled once per shape, and the rows they return.

`databases` compiled every SQLAlchemy statement again on every call (a profile put ~8 % of
the server's main thread there under a read load) and wrapped every row in its own record
type. Here a statement is compiled the first time its shape is seen (SQLAlchemy's cache key
says when two statements differ only in their bound values), SQL text is parsed once, and
the driver gets the SQL string and its parameters straight.

Units of work keep their contract: ``conn.execute / fetch_one / fetch_all / fetch_val /
execute_many(sql_text_or_statement, {named: params})`` and rows indexable by column name
(``row["col"]``), by position, and through ``row._mapping``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

# Shapes are few (a fixed set of units); the bound only guards against a caller that builds
# statement shapes from data.
CACHE_LIMIT = 2000


class Row:
    """One result row: ``row["col"]``, ``row[0]``, ``row.col``, ``row._mapping``, ``dict(row)``."""

    __slots__ = ("_keys", "_values")

    def __init__(self, values: Sequence[Any], keys: Mapping[str, int]) -> None:
        self._values = values
        self._keys = keys

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            return self._values[self._keys[key]]
        return self._values[key]

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[self._keys[name]]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, key: str, default: Any = None) -> Any:
        index = self._keys.get(key)
        return default if index is None else self._values[index]

    def keys(self) -> list[str]:
        return list(self._keys)

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._keys, self._values, strict=True))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return tuple(self._values) == tuple(other._values)
        return tuple(self._values) == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Row({self._mapping!r})"


def column_index(names: Sequence[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


@dataclass(slots=True)
class Prepared:
    """One statement shape, ready for its driver."""

    sql: str
    # PostgreSQL (``$n``): the parameter names in position order. SQLite: None (``:name``).
    names: tuple[str, ...] | None
    compiled: SQLCompiler | None = None
    # Per result column: a function that turns the driver's value into SQLAlchemy's (a
    # SQLite 0/1 into a bool), or None; None altogether when no column needs one.
    results: tuple[Callable[[Any], Any] | None, ...] | None = None
    # The row's name -> position index, shared by every row of this shape.
    keys: dict[str, int] | None = None


class Statements:
    """Turns what a unit passes into ``(sql, parameters)`` for one dialect, caching shapes."""

    def __init__(self, dialect_name: str) -> None:
        self.dialect_name = dialect_name
        self._dialect: Dialect = (
            sqlite.dialect(paramstyle="named") if dialect_name == "sqlite" else pg_asyncpg.dialect()  # type: ignore[no-untyped-call]
        )
        self._positional = dialect_name != "sqlite"
        self._cache: dict[Any, Prepared] = {}

    def prepare(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None
    ) -> tuple[Prepared, Any]:
        """The prepared shape and the driver's parameters (a dict, or a list in order)."""
        if isinstance(query, str):
            return self._text(query, values)
        clause: ClauseElement = query
        if values:
            # As `databases` did: values given beside a statement are its column values.
            clause = query.values(**values)  # type: ignore[attr-defined]
        return self._clause(clause)

    def _text(self, sql: str, values: Mapping[str, Any] | None) -> tuple[Prepared, Any]:
        prepared = self._cache.get(sql)
        if prepared is None:
            if self._positional:
                compiled = sa.text(sql).compile(dialect=self._dialect)
                prepared = Prepared(compiled.string, tuple(compiled.positiontup or ()))
            else:
                prepared = Prepared(sql, None)  # sqlite3 binds ``:name`` itself
            self._remember(sql, prepared)
        if prepared.names is None:
            return prepared, values or {}
        values = values or {}
        return prepared, [values[name] for name in prepared.names]

    def _clause(self, query: ClauseElement) -> tuple[Prepared, Any]:
        key = query._generate_cache_key()
        prepared = self._cache.get(key.key) if key is not None else None
        if prepared is None:
            compiled = self._dialect.statement_compiler(self._dialect, query, cache_key=key)
            prepared = Prepared(
                compiled.string,
                tuple(compiled.positiontup or ()) if self._positional else None,
                compiled,
                self._result_processors(compiled),
            )
            if key is not None:
                self._remember(key.key, prepared)
        assert prepared.compiled is not None
        compiled = prepared.compiled
        constructed: MutableMapping[str, Any] = compiled.construct_params(
            extracted_parameters=key.bindparams if key is not None else None
        )
        params: Mapping[str, Any] = constructed
        processors: Mapping[str, Any] = compiled._bind_processors
        if compiled.post_compile_params:
            # IN (...) lists: expanded per call (the list length is part of the SQL).
            expanded = compiled._process_parameters_for_postcompile(constructed)
            params = expanded.parameters
            processors = expanded.processors
            shape = Prepared(
                expanded.statement,
                tuple(expanded.positiontup or ()) if self._positional else None,
                compiled,
                prepared.results,
            )
        else:
            shape = prepared
        if processors:
            params = {
                name: processors[name](value) if name in processors else value
                for name, value in params.items()
            }
        if shape.names is None:
            return shape, params
        return shape, [params[name] for name in shape.names]

    def _result_processors(
        self, compiled: SQLCompiler
    ) -> tuple[Callable[[Any], Any] | None, ...] | None:
        if self._positional:
            return None  # asyncpg hands back Python types already
        found = tuple(
            column.type._cached_result_processor(self._dialect, None)
            for column in compiled._result_columns
        )
        return found if any(found) else None

    def _remember(self, key: Any, prepared: Prepared) -> None:
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = prepared


def make_rows(prepared: Prepared, names: Sequence[str], raw: Sequence[Sequence[Any]]) -> list[Row]:
    """Rows of one result; the name index is built once per statement shape."""
    keys = prepared.keys
    if keys is None or len(keys) != len(names):
        keys = prepared.keys = column_index(names)
    results = prepared.results
    if results is None:
        return [Row(values, keys) for values in raw]
    return [
        Row(
            tuple(
                value if convert is None or value is None else convert(value)
                for value, convert in zip(values, results, strict=False)
            ),
            keys,
        )
        for values in raw
    ]
