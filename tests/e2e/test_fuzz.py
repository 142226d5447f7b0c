"""Fuzz the GraphQL API with schemathesis against a real `tierup serve`, once per role.

Schemathesis (over hypothesis-graphql) generates documents for each root query and mutation field
of `schema.graphql`: mostly valid ones, a quarter breaking the schema (wrong types, missing
arguments). Each is sent to a real server process — a fresh database with the classic program, three
members, orders, a refund, a review, coupons, points and a redemption — as MEMBER, OPERATOR, SERVICE
and with no token, its arguments either written inline (the scalars' `parse_literal`) or sent as JSON
`variables` (`parse_value`, variable coercion).

Every scalar starts plausible — ids, codes, cursors and external ids harvested from the seeded
database, amounts, past dates, small page sizes; arguments such as `memberId`, `tier`, `after`,
`segment` or a program `definition` get values of their own kind — so that requests get past
validation into the resolvers. Then two valid documents in three get exactly one argument or input
field changed to an edge case of its type — NUL bytes, lone surrogates, huge or odd numbers, global ids
of other types or with odd keys, dates at the ends of the calendar, odd cursors, program definitions
cut short or nested past any parser's recursion limit — or, now and then, anything hypothesis draws:
one fault at a time, met by the resolver that has to handle it. Outside production one request in
ten carries an odd `X-Tierup-Now`.

Every response must be JSON without a 5xx, and every error must carry a string `extensions.code`
other than INTERNAL_SERVER_ERROR (README, "Errors"): QUERY_TOO_COMPLEX, BAD_USER_INPUT, FORBIDDEN…
are answers, not failures. Failures are collected, not raised at the first: the test sends all its
requests, then fails listing each failure class (kind, code, message with values blanked) once, with
its smallest request — role, query, variables — the response and what the server logged meanwhile.
`test_envelopes` sends, in development and production, what schemathesis never does: bodies that are
not GraphQL requests, limits exceeded, a subscription over HTTP, and `node(id:)` with a global id of
every type the schema names.

Settings (environment): TIERUP_FUZZ_EXAMPLES — requests per root field the role may call (default 60,
a fifth of that for the others; raise it for a local soak); TIERUP_FUZZ_ENV — comma-separated server
modes for the fuzz (default `development`; add `production` for the masked mode); TIERUP_FUZZ_REPORT —
a directory to write each test's answers and failure classes to, as JSON.

Generation is derandomized (no example database), so every run sends the same requests (but for the
values of the random referral and coupon codes it harvests); nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import tomllib
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import graphql
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from helpers import SECRET
from servers import start_server, stop, wait_ready
from tierup.auth import Role, mint_token
from wsclient import free_port

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = graphql.build_schema((ROOT / "schema.graphql").read_text())
EXAMPLES = int(os.environ.get("TIERUP_FUZZ_EXAMPLES", "60"))
ENVS = [e.strip() for e in os.environ.get("TIERUP_FUZZ_ENV", "development").split(",") if e.strip()]
REPORT_DIR = os.environ.get("TIERUP_FUZZ_REPORT")

ROLES = [Role.MEMBER, Role.OPERATOR, Role.SERVICE, None]
SUBJECTS = {Role.MEMBER: "alice", Role.OPERATOR: "ops", Role.SERVICE: "shop"}
# The root fields each role may call (README, "Access") get all the examples; the others a fifth: their
# arguments are coerced before the role is checked, and the refusal is the same every time.
QUERIES = {"node", "viewer", "identity", "program"}
MAY_CALL = {
    Role.MEMBER: QUERIES | {"checkIn", "claimTaskReward", "claimBenefit", "redeemReward"},
    Role.OPERATOR: QUERIES | {"member", "members", "issueCoupon", "voidCoupon", "expirePoints", "adjustPoints",
                              "evaluateTiers", "refreshRfm", "publishProgram", "simulateProgram"},
    Role.SERVICE: QUERIES | {"member", "members", "enrollMember", "recordOrder", "refundOrder", "recordReview",
                             "reportCustomerCount"},
    None: set(),
}


def role_id(role: Role | None) -> str:
    return role.value if role else "anonymous"


# --- the server ---------------------------------------------------------------------------------------

@dataclass
class Server:
    url: str
    log: Path
    env: str
    process: subprocess.Popen


@pytest.fixture
def fuzz_server(request, database_url, tmp_path):
    """`tierup serve` in its own process on a free port, on a fresh database (classic program)."""
    port = free_port()
    # TIERUP_GRAPHIQL_CDN: no GraphiQL asset download from the network in the background
    process = start_server(database_url, port, tmp_path, TIERUP_ENV=request.param,
                           TIERUP_GRAPHIQL_CDN="http://127.0.0.1:9/npm")
    try:
        asyncio.run(wait_ready(port, process, tmp_path))
        yield Server(f"http://127.0.0.1:{port}/graphql", tmp_path / f"server-{port}.log", request.param, process)
    finally:
        stop([process])


def post(client: httpx.Client, url: str, body, role: Role | None = None, headers: dict | None = None,
         method: str | None = None) -> httpx.Response:
    """`body` as JSON (ensure_ascii: a lone surrogate travels as a \\ud800 escape), or raw bytes; or, for a
    GET, the query in the URL. One connection per request, so that a server dropping a connection cannot
    blame the next request."""
    sent = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    if role is not None:
        token = mint_token(SECRET, sub=SUBJECTS[role], program="classic", role=role, ttl_seconds=7 * 24 * 3600)
        sent["Authorization"] = f"Bearer {token}"
    if method == "GET":  # `body` is {"query": …}
        return client.get(url, params=body, headers=sent)
    return client.post(url, content=body if isinstance(body, bytes) else json.dumps(body).encode(), headers=sent)


# --- seeding: three members and some history; then every id, code and cursor they expose ---------------

def report(field_name: str, input_type: str, **values) -> tuple[str, dict]:
    return (f"mutation($i: {input_type}!) {{ {field_name}(input: $i) {{ userErrors {{ code message }} }} }}",
            {"i": values})


def seed_reports(alice: dict) -> list[tuple[Role, tuple[str, dict]]]:
    """What is reported, in order; the second part needs alice's ids and referral code."""
    if not alice:
        return [(Role.SERVICE, r) for r in [
            report("enrollMember", "EnrollMemberInput", externalId="alice", displayName="Alice",
                   birthday="1990-11-02", phone="13800000000", joinedAt="2026-01-05T10:00:00+08:00"),
            report("enrollMember", "EnrollMemberInput", externalId="carol", joinedAt="2026-02-01T10:00:00+08:00"),
            report("recordOrder", "RecordOrderInput", externalId="A-1001", memberExternalId="alice", amount="250.00",
                   paidAt="2026-03-01T10:00:00+08:00"),
            report("recordOrder", "RecordOrderInput", externalId="A-1002", memberExternalId="alice",
                   amount="1200.50", paidAt="2026-04-02T10:00:00+08:00"),
            report("recordOrder", "RecordOrderInput", externalId="C-1", memberExternalId="carol", amount="80",
                   paidAt="2026-05-02T10:00:00+08:00"),
            report("refundOrder", "RefundOrderInput", externalId="R-1", orderExternalId="A-1001", amount="50",
                   refundedAt="2026-03-05T10:00:00+08:00"),
            report("recordReview", "RecordReviewInput", externalId="V-1", memberExternalId="alice",
                   orderExternalId="A-1001", withPhotos=True, postedAt="2026-03-06T10:00:00+08:00"),
            report("reportCustomerCount", "ReportCustomerCountInput", externalId="CC-1", customers=10,
                   asOf="2026-06-30T00:00:00+08:00"),
        ]]
    return [
        (Role.SERVICE, report("enrollMember", "EnrollMemberInput", externalId="bob", referralCode=alice["referralCode"],
                              joinedAt="2026-03-01T10:00:00+08:00")),
        (Role.SERVICE, report("recordOrder", "RecordOrderInput", externalId="B-1", memberExternalId="bob",
                              amount="99.99", paidAt="2026-03-03T10:00:00+08:00")),
        (Role.OPERATOR, report("issueCoupon", "IssueCouponInput", memberId=alice["id"], externalId="IC-1",
                               templateId=alice["coupons"]["edges"][0]["node"]["template"]["id"])),
        (Role.OPERATOR, report("adjustPoints", "AdjustPointsInput", memberId=alice["id"], amount=800, reason="seed",
                               externalId="ADJ-1")),
        (Role.MEMBER, report("redeemReward", "RedeemRewardInput", rewardId=alice["reward"])),
        (Role.MEMBER, ("mutation { checkIn { userErrors { code message } } }", {})),
        (Role.OPERATOR, ("mutation { refreshRfm { userErrors { code message } } }", {})),
    ]


ALICE = """{ member(externalId: "alice") { id referralCode coupons(first: 1) { edges { node { template { id } } } } }
             program { rewards(first: 1) { edges { node { id } } } } }"""

# Two queries, each well within the cost budget (README, "Limits"): about 560 and 1,660.
HARVEST = ["""{ program {
  id code
  ladder { tiers { id code benefits { id code coupon { id code } } } }
  growthTree { tasks { id code } }
  benefits { id code coupon { id code } }
  rewards(first: 100) { edges { cursor node { id code reward { coupon { id code } } } } }
  quests(activeOnly: false) { id code }
} }""", """{ members(first: 20) { edges { cursor node {
  id externalId referralCode
  orders(first: 20) { edges { cursor node { id externalId } } }
  coupons(first: 20) { edges { cursor node { id code template { id code } } } }
  points { ledger(first: 20) { edges { cursor node { id } } } }
} } } }"""]


def collect(value, found: dict[str, dict], key: str = "") -> dict[str, dict]:
    """Every string in a response, by the name of its field. Dicts as ordered sets: a random code (referral,
    coupon) keeps its place from run to run, so that the same draws pick the same rows."""
    if isinstance(value, dict):
        for k, v in value.items():
            collect(v, found, k)
    elif isinstance(value, list):
        for v in value:
            collect(v, found, key)
    elif isinstance(value, str):
        found.setdefault(key, {})[value] = None
    return found


def seed(client: httpx.Client, url: str) -> dict[str, dict]:
    """The seeded history reported; what the database then holds, by field name: id, cursor, code, externalId…"""
    def ok(role: Role, query: str, variables: dict | None = None) -> dict:
        response = post(client, url, {"query": query, "variables": variables or {}}, role)
        data = response.json().get("data") or {}
        assert "errors" not in response.json() and all(
            not (value or {}).get("userErrors") for value in data.values()), (query, variables, response.text)
        return data

    for role, (query, variables) in seed_reports({}):
        ok(role, query, variables)
    lookup = ok(Role.OPERATOR, ALICE)
    alice = {**lookup["member"], "reward": lookup["program"]["rewards"]["edges"][0]["node"]["id"]}
    for role, (query, variables) in seed_reports(alice):
        ok(role, query, variables)
    found: dict[str, dict] = {}
    for query in HARVEST:
        collect(ok(Role.OPERATOR, query), found)
    return found


# --- values: plausible ones everywhere, and one edge case per request -------------------------------------

SEGMENTS = ["Champions", "At risk", "Loyal", "Can't lose them", "Need attention", "Hibernating", "About to sleep",
            "Potential loyalist", "Lost", "Promising", "New"]
ID_ARGUMENTS = {"memberId": "Member", "templateId": "CouponTemplate", "rewardId": "RewardItem",
                "benefitId": "Benefit", "taskId": "Task", "couponId": "Coupon", "tier": "Tier"}


# graphql-core's lexer refuses lone surrogates, which JSON variables may carry: they are parked on
# private-use code points while the document is parsed and rewritten.
def _park(text: str) -> str:
    return re.sub("[\ud800-\udfff]", lambda m: chr(0xF0000 + ord(m.group())), text)


def _unpark(value):
    if isinstance(value, str):
        return re.sub("[\U000fd800-\U000fdfff]", lambda m: chr(ord(m.group()) - 0xF0000), value)
    if isinstance(value, list):
        return [_unpark(v) for v in value]
    if isinstance(value, dict):
        return {k: _unpark(v) for k, v in value.items()}
    return value


def _b64(text: str, encode=base64.b64encode) -> str:
    return encode(text.encode("utf-8", "surrogatepass")).decode()


def _literal(value) -> graphql.ValueNode:
    if isinstance(value, int):
        return graphql.IntValueNode(value=str(value))
    if isinstance(value, float):
        return graphql.FloatValueNode(value=str(value))
    return graphql.StringValueNode(value=_park(value))


def register_scalars(found: dict[str, dict]) -> None:
    """Plausible values of every scalar (global to schemathesis), so that a request gets past validation into
    the resolvers; `fuzz_requests` then puts in one edge case at a time."""
    names = [*found["code"], *found["externalId"], *found["referralCode"], "nobody", "ali", *SEGMENTS[:2]]
    for name, strategy in {
        "String": st.sampled_from(names), "ID": st.sampled_from(list(found["id"])), "Int": st.integers(1, 30),
        "Decimal": st.decimals("0.01", 3000, places=2).map(str),
        "Date": st.dates(date(2025, 1, 1), date(2026, 10, 31)).map(str),
        "DateTime": st.datetimes(datetime(2025, 1, 1), datetime(2026, 10, 31), timezones=st.sampled_from(
            [timezone(timedelta(hours=8)), timezone.utc]) | st.timezones()).map(datetime.isoformat),
    }.items():
        schemathesis.graphql.scalar(name, strategy.map(_literal))


def program_definitions() -> tuple[list[str], list[str]]:
    """The bundled programs as TOML and JSON; and broken: cut short, or nested past any recursion limit."""
    good, broken = [], ["a = " + "[" * 20_000 + "]" * 20_000, '{"a":' * 20_000 + "1" + "}" * 20_000,
                        "a = " + "{b = " * 3_000 + "1" + "}" * 3_000, "a.b.c.d" * 2_000 + " = 1", "= = =", "{}"]
    for path in sorted((ROOT / "fixtures" / "programs").glob("*.toml")):
        text = path.read_text()
        good += [text, json.dumps(tomllib.loads(text), default=str)]
        broken.append(text[: len(text) // 2])
    return good, broken


def aimed(found: dict[str, dict]) -> dict[str, tuple[list, list | None]]:
    """Arguments and input fields, by name, whose plausible values are narrower than their type (they get one
    of these), and some with edge cases of their own."""
    ids: dict[str, list] = {}
    for global_id in found["id"]:
        ids.setdefault(base64.b64decode(global_id).decode().partition(":")[0], []).append(global_id)
    odd_cursors = [_b64(f"cursor:{key}", base64.urlsafe_b64encode)
                   for key in ("0", "-1", "1.5", "²", "9" * 20, "9223372036854775808", "")]
    return {"after": (list(found["cursor"]), odd_cursors + ["cursor:1", "===="]),
            "definition": program_definitions(),
            "memberExternalId": (["alice", "bob", "carol"], None),
            "orderExternalId": (["A-1001", "A-1002", "B-1", "C-1"], None),
            "segment": (SEGMENTS, None),
            **{name: (ids[type_name], None) for name, type_name in ID_ARGUMENTS.items()}}


TEXT = st.text(max_size=40) | st.text(st.characters(categories=["Cs", "Cc", "Zs", "Mn", "Nd", "No"]), max_size=10)
INT32 = st.integers(-(2**31), 2**31 - 1)
ODD_TEXT = ["", " ", "\x00", "a\x00b", "\ud800", "a\udc80b", "\ufeff", "\u202e", "😀", "会员", "%", "_", "\\",
            "' OR '1'='1", "%_%", "\n", "null", "NaN", "x" * 201, "x" * 10_000, "🙂" * 300]
ODD_KEYS = ["0", "-1", "1.5", " 1", "+1", "1_000", "²", "١", "9" * 20, "9223372036854775808", "1e3", "", "abc",
            "\x00", "\ud800", "classic", "classic:GOLD", "classic:NO_SUCH", "other:GOLD", ":GOLD", "classic:GOLD:x",
            "classic:\x00", "classic:" + "G" * 500]
NODE_TYPES = ["Benefit", "Coupon", "CouponTemplate", "Member", "Order", "PointsEntry", "Program", "Quest",
              "RewardItem", "Task", "Tier", "Query", "Node", "Nope", "", "member", "\x00"]
# By scalar type, what one argument or input field of a request may get instead of its plausible value:
# a curated edge case four times in five, each as likely as the next; else anything hypothesis draws.
EDGES = {
    "String": (ODD_TEXT, TEXT),
    "ID": (ODD_TEXT + [_b64(f"{t}:{k}") for t in NODE_TYPES for k in ODD_KEYS],
           st.builds(lambda t, k: _b64(f"{t}:{k}"), st.sampled_from(NODE_TYPES), TEXT) | TEXT | INT32),
    "Int": ([0, -1, 100, 101, 3651, 10**6, 10**6 + 1, 2**31 - 1, -(2**31)], INT32),
    "Decimal": (["0", "0.00", "0.001", "-1", "-0", "1000000", "1000000.01", "9" * 30, "1e3", "1E+999999",
                 "1e-999999", "NaN", "sNaN", "-Infinity", " 1", "1,000", "¥1", "1_000", "١٢٣", "0x10", "", "\x00",
                 ".5", "+1", 1000, 1.5, -(2**31)],
                st.decimals(allow_nan=True, allow_infinity=True).map(str) | INT32
                | st.floats(allow_nan=False, allow_infinity=False)),
    "Date": (["0001-01-01", "1999-12-31", "9999-12-31", "2026-02-30", "2026-13-01", "20260301", "2026-W09-1",
              "2026-03-01T10:00:00+08:00", "10000-01-01", "", "\x00", "２０２６-０３-０１", 20260301],
             st.dates().map(str) | TEXT),
    "DateTime": (["2026-03-01T10:00:00", "2026-03-01", "1999-12-31T23:59:59+08:00", "0001-01-01T00:00:00+08:00",
                  "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2026-03-01T24:00:00+08:00",
                  "2026-03-01T10:00:00+25:00", "2026-03-01T10:00:00+08:00[Asia/Shanghai]", "now", "", "\x00",
                  "2026-03-01T10:00:00+08:00\x00", "2026-03-01T10:00:00.1234567+08:00",
                  "2099-01-01T00:00:00+08:00", 0],
                 st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat) | TEXT),
}
NOW_HEADERS = ["2026-06-01T09:00:00+08:00", "2026-06-01T09:00:00", "garbage", "", "0001-01-01T00:00:00+08:00",
               "9999-12-31T23:59:59-23:59"]


# --- requests -------------------------------------------------------------------------------------------

@dataclass
class FuzzRequest:
    operation: str
    mode: str  # schemathesis's positive/negative, and literal/variables; for an envelope, POST or GET
    query: str
    variables: dict | None = None
    headers: dict = field(default_factory=dict)
    envelope: object = None  # an envelope's body, sent as it is: bytes, or anything JSON

    def body(self):
        if self.envelope is not None:
            return self.envelope
        return {"query": self.query} if self.variables is None else {"query": self.query, "variables": self.variables}

    def size(self) -> int:
        return len(self.query) + len(json.dumps([self.variables, self.headers]))


def hoist_arguments(document: graphql.DocumentNode) -> tuple[str, dict]:
    """The document with each inline argument moved into a $variable of the argument's type."""
    type_info, variables, definitions = graphql.TypeInfo(SCHEMA), {}, []

    class Hoist(graphql.Visitor):
        def enter_argument(self, node, *_):
            argument = type_info.get_argument()
            if argument is None or isinstance(node.value, graphql.VariableNode):
                return None
            variable = graphql.VariableNode(name=graphql.NameNode(value=f"v{len(variables)}"))
            variables[variable.name.value] = graphql.value_from_ast_untyped(node.value)
            definitions.append(graphql.VariableDefinitionNode(
                variable=variable, type=graphql.parse_type(str(argument.type)), directives=()))
            return graphql.ArgumentNode(name=node.name, value=variable)

    document = graphql.visit(document, graphql.TypeInfoVisitor(type_info, Hoist()))
    operation, *rest = document.definitions  # nodes are frozen: a new operation with the variables declared
    operation = replace(operation, variable_definitions=(*(operation.variable_definitions or ()), *definitions))
    return graphql.print_ast(replace(document, definitions=(operation, *rest))), variables


@st.composite
def fuzz_requests(draw, operation, aim: dict[str, tuple], env: str) -> FuzzRequest:
    """A document from schemathesis, valid three times in four; in a valid one, aimed values in and, two
    times in three, one argument or input field with an edge case; sent inline or as variables."""
    case = draw(operation.as_strategy(generation_mode=draw(st.sampled_from([GenerationMode.POSITIVE] * 3
                                                                          + [GenerationMode.NEGATIVE]))))
    mode = case.meta.generation.mode.value  # negative falls back to positive when nothing can break the schema
    document, type_info, sites = graphql.parse(_park(case.body)), graphql.TypeInfo(SCHEMA), []
    rnd = draw(st.randoms())  # uniform choices (hypothesis's own favour the first and the last), still derandomized

    class Aim(graphql.Visitor):
        def enter_argument(self, node, *_):
            scalar = graphql.get_named_type(type_info.get_input_type())
            if scalar is None or scalar.name not in EDGES or not isinstance(node.value, (
                    graphql.StringValueNode, graphql.IntValueNode, graphql.FloatValueNode, graphql.NullValueNode)):
                return None
            plausible, _ = aim.get(node.name.value, (None, None))
            if plausible and isinstance(node.value, graphql.StringValueNode):
                node = replace(node, value=_literal(rnd.choice(plausible)))
            sites.append((node, scalar.name))
            return node

        enter_object_field = enter_argument

    if mode == "positive":
        document = graphql.visit(document, graphql.TypeInfoVisitor(type_info, Aim()))
    if sites and rnd.random() < 2 / 3:
        chosen, scalar = rnd.choice(sites)
        curated, anything = EDGES[scalar]
        curated = aim.get(chosen.name.value, (None, None))[1] or curated
        value = _literal(rnd.choice(curated) if rnd.random() < 0.8 else draw(anything))
        mode = f"{mode}, {chosen.name.value} odd"

        class Swap(graphql.Visitor):
            def enter_argument(self, node, *_):
                return replace(node, value=value) if node is chosen else None

            enter_object_field = enter_argument

        document = graphql.visit(document, Swap())
    if draw(st.booleans()):
        query, variables = hoist_arguments(document)
        request = FuzzRequest(operation.label, f"{mode}, variables", _unpark(query), _unpark(variables))
    else:
        request = FuzzRequest(operation.label, f"{mode}, literal", _unpark(graphql.print_ast(document)))
    if env != "production" and draw(st.integers(0, 9)) == 0:
        request.headers["X-Tierup-Now"] = draw(st.sampled_from(NOW_HEADERS))
    return request


# --- checks and the report ------------------------------------------------------------------------------

def normalise(message: str) -> str:
    """The message with what varies blanked, so that one defect is one class."""
    message = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "'…'", message)
    return re.sub(r"\d+", "N", re.sub(r"\s+", " ", message))[:240]


def judge(status: int, text: str, log_text: str) -> tuple[str, list[tuple[str, str | None, str]]]:
    """What the response is (`data`, or its first error's code) and its failures: (kind, code, message)."""
    failures = [("HTTP 5xx", None, normalise(text[:300]))] if status >= 500 else []
    try:
        payload = json.loads(text)
    except ValueError:
        return f"HTTP {status}", failures or [("the body is not JSON", None, normalise(text[:300]))]
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(errors or [], list):
        return f"HTTP {status}", failures + [("the body is not {data, errors}", None, normalise(text[:300]))]
    codes = []
    for error in errors or []:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        message = str(error.get("message")) if isinstance(error, dict) else repr(error)
        codes.append(code if isinstance(code, str) else "no code")
        if not isinstance(code, str):
            failures.append(("an error without extensions.code", None, normalise(message)))
        elif code == "INTERNAL_SERVER_ERROR":
            # production masks the message; the log has it under the request id (or only the exception's name)
            logged = re.search(rf"request id {re.escape(str(extensions.get('requestId')))}: (.*)", log_text)
            if logged:
                message = logged.group(1).strip() or log_text.strip().splitlines()[-1]
            failures.append(("INTERNAL_SERVER_ERROR", code, normalise(message)))
    return (codes[0] if codes else "data"), failures


@dataclass
class FailureClass:
    count: int = 0
    roles: set = field(default_factory=set)
    operations: set = field(default_factory=set)
    example: tuple | None = None  # (request, role, status, response, server log)


def condensed(log_text: str) -> str:
    """A logged traceback as its first line, tierup's own frames and the exception; other logs as they are."""
    lines = log_text.strip().splitlines()
    if not any(line.startswith("Traceback") for line in lines):
        return "\n".join(lines[-20:])
    ours = dict.fromkeys(f"{line.strip()}: {lines[n + 1].strip()}" for n, line in enumerate(lines[:-1])
                         if line.strip().startswith("File ") and "/tierup/" in line)
    return "\n".join([lines[0], *ours, lines[-1]])


class Collector:
    def __init__(self):
        self.classes: dict[tuple, FailureClass] = {}
        self.answers: Counter = Counter()

    def record(self, role: Role | None, request: FuzzRequest, response: httpx.Response | None, error: str,
               log_text: str) -> None:
        if response is None:
            answer, failures = "no response", [("no response", None, normalise(error))]
        else:
            answer, failures = judge(response.status_code, response.text, log_text)
        self.answers[answer] += 1
        for key in dict.fromkeys(failures):
            failure = self.classes.setdefault(key, FailureClass())
            failure.count += 1
            failure.roles.add(role_id(role))
            failure.operations.add(request.operation)
            if failure.example is None or request.size() < failure.example[0].size():
                failure.example = (request, role_id(role),
                                   response.status_code if response is not None else None,
                                   response.text[:1500] if response is not None else error, log_text)

    def summary(self) -> str:
        return f"{sum(self.answers.values())} requests; answers {dict(self.answers.most_common())}"

    def report(self, title: str) -> str:
        lines = [f"{title}: {len(self.classes)} failure classes"]
        for (kind, code, message), failure in sorted(self.classes.items(), key=lambda kv: (kv[0][0], -kv[1].count)):
            request, role, status, response, log_text = failure.example
            lines += ["", f"== {kind}: {message}",
                      f"   {failure.count}x; roles {sorted(failure.roles)}; operations {sorted(failure.operations)}",
                      f"   smallest: as {role}, {request.operation} ({request.mode}), HTTP {status}",
                      f"   query: {json.dumps(request.query)}", f"   variables: {json.dumps(request.variables)}"]
            if request.headers:
                lines.append(f"   headers: {json.dumps(request.headers)}")
            lines.append(f"   response: {response}")
            if log_text:
                lines.append("   server log: " + condensed(log_text).replace("\n", "\n      "))
        return "\n".join(lines)

    def finish(self, title: str, report_name: str) -> None:
        print(f"{title}: {self.summary()}")
        if REPORT_DIR:
            Path(REPORT_DIR).mkdir(parents=True, exist_ok=True)
            (Path(REPORT_DIR) / f"{report_name}.json").write_text(json.dumps({
                "title": title, "answers": self.answers, "classes": [
                    {"kind": kind, "code": code, "message": message, "count": f.count, "roles": sorted(f.roles),
                     "operations": sorted(f.operations), "query": f.example[0].query,
                     "variables": f.example[0].variables, "headers": f.example[0].headers, "role": f.example[1],
                     "status": f.example[2], "response": f.example[3], "server_log": f.example[4]}
                    for (kind, code, message), f in self.classes.items()]}, indent=1))
        if self.classes:
            pytest.fail(self.report(f"{title} ({self.summary()})"), pytrace=False)


class LogReader:
    """What the server wrote to its log since the last read."""

    def __init__(self, path: Path):
        self.path, self.offset = path, path.stat().st_size if path.exists() else 0

    def read(self) -> str:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        return data.decode("utf-8", "replace")


def send(client: httpx.Client, server: Server, log: LogReader, collector: Collector, role: Role | None,
         request: FuzzRequest) -> None:
    response, error = None, ""
    try:
        response = post(client, server.url, request.body(), role, request.headers, request.mode)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    assert server.process.poll() is None, "the server died:\n" + log.read()[-3000:]
    collector.record(role, request, response, error, log.read())


# --- the tests ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fuzz_server", ENVS, indirect=True)
@pytest.mark.parametrize("role", ROLES, ids=role_id)
def test_fuzz_role(fuzz_server: Server, role: Role | None):
    collector = Collector()
    with httpx.Client(timeout=60) as client:
        found = seed(client, fuzz_server.url)
        register_scalars(found)
        aim = aimed(found)
        log = LogReader(fuzz_server.log)
        api = schemathesis.graphql.from_path(str(ROOT / "schema.graphql"))
        for operation in (result.ok() for result in api.get_all_operations()):
            examples = EXAMPLES if operation.label.split(".")[1] in MAY_CALL[role] else max(1, EXAMPLES // 5)

            @settings(max_examples=examples, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), print_blob=False)
            @given(fuzz_requests(operation, aim, fuzz_server.env))
            def fuzz(request: FuzzRequest):
                send(client, fuzz_server, log, collector, role, request)

            fuzz()
    collector.finish(f"fuzz {fuzz_server.env} as {role_id(role)}", f"{fuzz_server.env}-{role_id(role)}")


# What schemathesis never sends — what a broken client or a scanner does to /graphql — and a global id
# of every type the schema names, which random draws cover too thinly.
IDENTITY = "{ identity { role } }"
CYCLE = "{ program { ladder { tiers { benefits { tiers { benefits { tiers { benefits { id } } } } } } } } }"
ENVELOPES = [
    ("not JSON", b"{query"),
    ("an empty body", b""),
    ("JSON null", b"null"),
    ("a JSON string", b'"{ identity { role } }"'),
    ("a batch", [{"query": IDENTITY}]),
    ("no query", {}),
    ("query a number", {"query": 1}),
    ("an empty query", {"query": ""}),
    ("a syntax error", {"query": "{ identity { role }"}),
    ("NUL in the query", {"query": "{ identity\x00 { role } }"}),
    ("a lone surrogate in the query", {"query": IDENTITY + " # \ud800"}),
    ("variables a string", {"query": IDENTITY, "variables": "x"}),
    ("an unknown operationName", {"query": "query A { identity { role } }", "operationName": "B"}),
    ("two operations, no name", {"query": "query A { identity { role } } query B { identity { role } }"}),
    ("an undeclared variable", {"query": "{ member(externalId: $x) { id } }"}),
    ("a missing required variable", {"query": "query($x: String!) { member(externalId: $x) { id } }"}),
    ("an ID variable a float", {"query": "query($id: ID!) { node(id: $id) { id } }", "variables": {"id": 1.5}}),
    ("too deep", {"query": "{ viewer { tier { " + "benefits { tiers { " * 7 + "code" + " } }" * 7 + " } } }"}),
    ("too many aliases", {"query": "{ " + " ".join(f"a{n}: identity {{ role }}" for n in range(40)) + " }"}),
    ("too many tokens", {"query": "{ " + "identity { role } " * 700 + "}"}),
    ("too costly", {"query": CYCLE}),
    ("too large", {"query": IDENTITY, "variables": {"x": "x" * 1_100_000}}),
    ("a mutation over GET", "mutation { checkIn { pointsAwarded } }"),
    ("a subscription over GET", "subscription { memberEvents { kind } }"),
    ("a subscription over POST", {"query": "subscription { memberEvents { kind } }"}),
    ("introspection", {"query": "{ __schema { queryType { name } } }"}),
] + [(f"node(id:) of a {name}", {"query": "query($id: ID!) { node(id: $id) { id } }",
                                 "variables": {"id": _b64(f"{name}:1")}})
     for name in sorted(SCHEMA.type_map) if not name.startswith("__")]


@pytest.mark.parametrize("fuzz_server", ["development", "production"], indirect=True)
def test_envelopes(fuzz_server: Server):
    """No 5xx, a JSON body, and a code on every error, whatever the request."""
    collector, log = Collector(), LogReader(fuzz_server.log)
    with httpx.Client(timeout=60) as client:
        for role in (Role.OPERATOR, None):
            for name, body in ENVELOPES:
                if isinstance(body, str):  # the query of a GET
                    request = FuzzRequest(name, "GET", body)
                else:
                    request = FuzzRequest(name, "POST", body.decode() if isinstance(body, bytes)
                                          else json.dumps(body)[:300], envelope=body)
                send(client, fuzz_server, log, collector, role, request)
    collector.finish(f"envelopes ({fuzz_server.env})", f"{fuzz_server.env}-envelopes")
