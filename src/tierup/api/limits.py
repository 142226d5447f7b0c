"""Bounds on what one GraphQL operation may cost, checked before any resolver runs, and a
code on every error.

Before execution: tokens (at parse), depth and aliases (validation rules), the operation's
cost (below) and the strings it carries. During execution: a deadline. After: every error
leaves with `extensions.code`, so clients can branch on it.

Cost is the number of objects an operation may return at most. A field whose type is an
object counts 1; a connection field counts its `first` (default 20) times what one of its
edges costs; any other list of objects counts as `LIST_ESTIMATE` items (or the estimate a
field declares with `metadata={"list_estimate": n}`); nested lists multiply. Scalars,
`__typename` and introspection are free. `Tier.benefits` inside `Benefit.tiers` inside
`Tier.benefits` … therefore grows tenfold at each level and is refused long before it runs.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator, Mapping

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    Visitor,
    get_named_type,
    is_list_type,
    is_non_null_type,
    specified_rules,
    parse,
    validate,
    visit,
)
from graphql.language import BREAK
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from ..services.validation import UNSTORABLE, UNSTORABLE_MESSAGE
from .connections import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"

LIST_ESTIMATE = 10


@dataclass(frozen=True)
class Limits:
    """What one operation may do; built once per schema, so that the validation rules are
    the same classes on every request and the validation cache keeps hitting."""

    max_depth: int
    max_aliases: int
    max_tokens: int
    max_cost: int
    deadline_seconds: float
    production: bool

    @property
    def rules(self) -> tuple:
        return _rules(self.max_depth, self.max_aliases, self.production)


@lru_cache(maxsize=None)
def _rules(max_depth: int, max_aliases: int, production: bool) -> tuple:
    rules = (*specified_rules, depth_rule(max_depth, None, None), aliases_rule(max_aliases),
             MaybeNullValidationRule, OneOfInputValidationRule)
    return (*rules, NoSchemaIntrospectionCustomRule) if production else rules


_parse = lru_cache(maxsize=1000)(parse)


def parsed(query: str, max_tokens: int) -> DocumentNode:
    """The document, parsed once per text (the same cache the request limits use); raises GraphQLError."""
    return _parse(query, max_tokens=max_tokens)


@lru_cache(maxsize=1000)
def _validate(schema: GraphQLSchema, document: DocumentNode, rules: tuple, hide_suggestions: bool
              ) -> list[GraphQLError]:
    errors = validate(schema, document, rules, hide_suggestions=hide_suggestions)
    for error in errors:
        _code(error, GRAPHQL_VALIDATION_FAILED)
    return errors


def _code(error: GraphQLError, code: str, **more: Any) -> GraphQLError:
    error.extensions = {**(error.extensions or {}), "code": code, **more}
    return error


class RequestLimits(SchemaExtension):
    """One instance per request (Strawberry's factory pattern); the limits and caches are shared."""

    def __init__(self, limits: Limits):
        super().__init__()
        self.limits = limits

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.limits.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            try:
                context.graphql_document = parsed(context.query, self.limits.max_tokens)
            except GraphQLError:
                pass  # Strawberry parses it again and reports the error, coded below
        yield
        for error in self.execution_context.pre_execution_errors or ():
            _code(error, GRAPHQL_PARSE_FAILED)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        errors = _validate(context.schema._schema, context.graphql_document, self.limits.rules,
                           self.limits.production)
        if not errors:
            # The name the client sent: Strawberry's operation_name falls back to the first operation's.
            errors = self._check_request(context.schema._schema, context.graphql_document,
                                         context._provided_operation_name, context.variables or {})
        context.pre_execution_errors = errors  # a list, even empty, tells Strawberry validation is done
        yield

    def _check_request(self, schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                       variables: Mapping[str, Any]) -> list[GraphQLError]:
        operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
        if operation_name is None and operations > 1:
            return [_code(GraphQLError("The document holds several operations: name the one to run "
                                       "in operationName."), BAD_USER_INPUT)]
        if _has_unstorable(variables) or _literals_unstorable(document):
            return [_code(GraphQLError(
                f"Strings {UNSTORABLE_MESSAGE}."), BAD_USER_INPUT)]
        cost = operation_cost(schema, document, operation_name, variables)
        if cost > self.limits.max_cost:
            return [_code(GraphQLError(
                f"This operation may return up to {cost:,} objects; the limit is {self.limits.max_cost:,}. "
                "Ask for smaller pages or fewer nested lists."), QUERY_TOO_COMPLEX,
                cost=cost, maximumCost=self.limits.max_cost)]
        return []


def _has_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if isinstance(value, Mapping):
        return any(_has_unstorable(k) or _has_unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable(v) for v in value)
    return False


@lru_cache(maxsize=1000)
def _literals_unstorable(document: DocumentNode) -> bool:
    finder = _UnstorableLiteral()
    visit(document, finder)
    return finder.found


class _UnstorableLiteral(Visitor):
    found = False

    def enter_string_value(self, node: StringValueNode, *_):
        if UNSTORABLE.search(node.value):
            self.found = True
            return BREAK
        return None


# Cost ---------------------------------------------------------------------------------------

def operation_cost(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                   variables: Mapping[str, Any]) -> int:
    """The most objects the operation can return (see the module's docstring)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
    if not chosen:
        return 0  # execution reports the missing operation
    operation = chosen[0]
    root = schema.get_root_type(operation.operation)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return _CostWalk(schema, fragments, variables).selection_set(operation.selection_set, root)


class _CostWalk:
    def __init__(self, schema: GraphQLSchema, fragments: dict, variables: Mapping[str, Any]):
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def selection_set(self, selection_set: SelectionSetNode | None, parent, page: int | None = None) -> int:
        """`page` is the `first` of the connection whose selection this is: its edges list holds that many."""
        if selection_set is None or parent is None or not hasattr(parent, "fields"):
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = self.schema.get_type(selection.type_condition.name.value) \
                    if selection.type_condition else parent
                total += self.selection_set(selection.selection_set, condition, page)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    total += self.selection_set(fragment.selection_set,
                                                self.schema.get_type(fragment.type_condition.name.value), page)
        return total

    def field(self, node: FieldNode, parent, page: int | None) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        definition = parent.fields.get(name)
        if definition is None or node.selection_set is None:
            return 0  # a scalar or enum
        first = self.page_size(node, definition) if "first" in definition.args else None
        one = 1 + self.selection_set(node.selection_set, get_named_type(definition.type), first)
        return self.items(definition, page) * one

    @staticmethod
    def items(definition, page: int | None) -> int:
        field_type = definition.type.of_type if is_non_null_type(definition.type) else definition.type
        if not is_list_type(field_type):
            return 1
        return page or _declared_estimate(definition) or LIST_ESTIMATE

    def page_size(self, node: FieldNode, definition) -> int:
        value = None
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
        if not isinstance(value, int) or isinstance(value, bool):
            default = definition.args["first"].default_value
            value = default if isinstance(default, int) else DEFAULT_PAGE_SIZE
        # Outside 1–100 the resolver refuses the page itself, with BAD_USER_INPUT.
        return min(max(value, 1), MAX_PAGE_SIZE)


def _declared_estimate(definition) -> int | None:
    strawberry_field = (definition.extensions or {}).get("strawberry-definition")
    metadata = getattr(strawberry_field, "metadata", None) or {}
    return metadata.get("list_estimate")


# Deadline -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic()
    seconds: float

    def error(self) -> GraphQLError:
        return GraphQLError(f"The operation ran longer than the server's limit of {self.seconds:g} s and was stopped.",
                            extensions={"code": DEADLINE_EXCEEDED})


_deadline: ContextVar[Deadline | None] = ContextVar("tierup_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """The deadline of the operation run inside; fields started after it fail."""
    current = Deadline(time.monotonic() + seconds, seconds)
    token = _deadline.set(current)
    try:
        yield current
    finally:
        _deadline.reset(token)


class DeadlineExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Checks the deadline as each field starts, so that even work that never awaits — completing
    a long list of objects already in memory — stops when time is up."""

    def build_resolve_info(self, *args, **kwargs):
        current = _deadline.get()
        if current is not None and time.monotonic() > current.at:
            raise current.error()
        return super().build_resolve_info(*args, **kwargs)
