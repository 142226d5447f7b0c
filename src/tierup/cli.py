"""The `tierup` command."""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from datetime import datetime
from pathlib import Path

from .auth import Role, mint_token
from .config import ConfigError, Settings
from .domain.program import CHANNELS


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    if getattr(args, "without_settings", False):  # reads files only: works whatever the environment holds
        return args.run(args, None) or 0
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"tierup: {exc}", file=sys.stderr)
        return 2
    return args.run(args, settings) or 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierup", description="Member programs over GraphQL.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the server (migrates and loads the default program first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=_serve)

    db = commands.add_parser("db", help="database maintenance").add_subparsers(title="db commands")
    upgrade = db.add_parser("upgrade", help="apply migrations")
    upgrade.set_defaults(run=_db_upgrade)

    program = commands.add_parser("program", help="program definitions").add_subparsers(title="program commands")
    load = program.add_parser("load", help="create or update a program from a TOML file")
    load.add_argument("file")
    load.set_defaults(run=_program_load)
    validate = program.add_parser("validate", help="check program files without loading them (every problem with "
                                                   "its key path)")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(run=_program_validate, without_settings=True)
    schema = program.add_parser("schema", help="print the JSON Schema of program files, for editors (Taplo / Even "
                                               "Better TOML, VS Code, JetBrains)")
    schema.add_argument("--output", help="file to write (default: standard output)")
    schema.set_defaults(run=_program_schema, without_settings=True)

    token = commands.add_parser("token", help="mint a development token")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--program", required=True)
    token.add_argument("--sub", required=True)
    token.add_argument("--ttl", type=int, default=24 * 3600, help="seconds (default one day)")
    token.set_defaults(run=_token)

    export = commands.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    export.add_argument("--output", default="schema.graphql")
    export.set_defaults(run=_export_schema)

    evaluate = commands.add_parser("evaluate-tiers", help="re-evaluate members whose tier validity ended")
    evaluate.add_argument("--as-of", type=_iso_time, help="ISO time with offset (default now)")
    evaluate.add_argument("--program", help="program code (default: every program)")
    evaluate.set_defaults(run=_evaluate_tiers)

    expire = commands.add_parser("expire-points", help="expire points due by a time and send reminders")
    expire.add_argument("--as-of", type=_iso_time, help="ISO time with offset (default now)")
    expire.add_argument("--program", help="program code (default: every program)")
    expire.set_defaults(run=_expire_points)

    seed = commands.add_parser("seed", help="write a deterministic synthetic history into an empty program")
    seed.add_argument("--members", type=int, required=True)
    seed.add_argument("--orders", type=int, required=True)
    seed.add_argument("--seed", type=int, default=7, help="random seed (same seed, same history)")
    seed.add_argument("--program", default=DEFAULT_PROGRAM, help="program code (loaded from the bundled fixtures "
                                                                  "when the database has none)")
    seed.set_defaults(run=_seed)

    export = commands.add_parser("export", help="export data").add_subparsers(title="export commands")
    export_members = export.add_parser("members", help="members of a selection, as CSV (a progress bar on a terminal)")
    export_members.add_argument("--segment", help="RFM segment, e.g. 'At risk'")
    export_members.add_argument("--stage", choices=["NEW", "GROWING", "MATURE", "DECLINING", "CHURNED"])
    export_members.add_argument("--silent-days", type=int, help="no order for this many days (沉默预警)")
    export_members.add_argument("--quadrant", choices=["HIGH_VALUE_ACTIVE", "HIGH_VALUE_SILENT", "LOW_VALUE_ACTIVE",
                                                       "LOW_VALUE_SILENT"])
    export_members.add_argument("--tier", help="tier code")
    export_members.add_argument("--channel", choices=CHANNELS,
                                help="members the channel reached (joined or ordered through it)")
    export_members.add_argument("--tag", help="tag code (MANUAL or RULE): the members holding it now")
    export_members.add_argument("--format", choices=["csv"], default="csv")
    export_members.add_argument("--output", help="file to write (default: standard output)")
    export_members.add_argument("--program", default=DEFAULT_PROGRAM, help=f"program code (default {DEFAULT_PROGRAM})")
    export_members.set_defaults(run=_export_members)

    imports = commands.add_parser(
        "import", help="import history: members, orders or refunds (CSV or JSON lines)",
        description="Import history. Columns, named as the API's inputs (optional ones in brackets): members "
                    "externalId [displayName birthday joinedAt phone channel storeCode]; orders externalId "
                    "memberExternalId amount paidAt [channel storeCode]; refunds externalId orderExternalId amount "
                    "refundedAt [channel storeCode]. A file with a bad row imports nothing. Orders and refunds run the "
                    "daily jobs of their time (points expiry, tier evaluation); import refunds with their orders "
                    "(--refunds) so that each applies at its time. Afterwards run `tierup jobs` so that what "
                    "lapsed after the last row is settled.")
    imports.add_argument("kind", choices=["members", "orders", "refunds"])
    imports.add_argument("file", help="CSV with a header row, or JSON lines")
    imports.add_argument("--program", default=DEFAULT_PROGRAM, help=f"program code (default {DEFAULT_PROGRAM})")
    imports.add_argument("--encoding", default="utf-8", help="the file's text encoding (default utf-8; "
                                                             "gb18030 for Excel's plain CSV on a Chinese system)")
    imports.add_argument("--refunds", metavar="FILE", help="with orders: their refunds, applied in the same time "
                                                           "order (each between the orders before and after it)")
    imports.set_defaults(run=_import)

    simulate = commands.add_parser("simulate", help="replay stored history against a draft program")
    simulate.add_argument("draft", help="the draft program file (TOML)")
    simulate.add_argument("--program", default=None, help="the live program whose history to replay (default: "
                                                            "the only program, or the draft's code)")
    simulate.add_argument("--from", dest="start", type=_iso_date, help="first day counted (default: the first report)")
    simulate.add_argument("--to", dest="end", type=_iso_date, help="last day replayed (default: today)")
    simulate.set_defaults(run=_simulate)

    rfm = commands.add_parser("refresh-rfm", help="score every member's RFM as of a time")
    rfm.add_argument("--as-of", type=_iso_time, help="ISO time with offset (default now)")
    rfm.add_argument("--program", help="program code (default: every program)")
    rfm.set_defaults(run=lambda args, settings: _each_program(settings, args, _rfm_line))

    jobs = commands.add_parser("jobs", help="run every scheduled job once, as tierup serve does (expiry, tier "
                                            "evaluation, RFM, membership reminders, birthdays, campaigns, webhooks)")
    jobs.add_argument("--as-of", type=_iso_time, help="ISO time with offset (default now)")
    jobs.add_argument("--program", help="program code (default: every program)")
    jobs.set_defaults(run=_jobs)

    assets = commands.add_parser("assets", help="GraphiQL assets").add_subparsers(title="assets commands")
    fetch = assets.add_parser("fetch", help="download and verify the GraphiQL page's npm packages")
    fetch.set_defaults(run=_assets_fetch)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tierup")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _iso_date(text: str):
    from datetime import date

    return date.fromisoformat(text)


def _iso_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a UTC offset, e.g. 2027-01-01T00:00:00+08:00")
    return value


def _db_upgrade(args, settings: Settings) -> int:
    from .store.migrate import upgrade

    upgrade(settings.database_url)
    print(f"database at {_safe_url(settings.database_url)} is up to date")
    return 0


def _program_load(args, settings: Settings) -> int:
    from .programs import ProgramError, load_program_file
    from .store.migrate import upgrade

    try:
        definition = load_program_file(args.file)
    except ProgramError as exc:
        _print_problems(exc)
        print(f"{len(exc.problems)} problem(s); nothing was loaded", file=sys.stderr)
        return 1
    upgrade(settings.database_url)
    publication = asyncio.run(_publish(settings, definition))
    state = "created" if publication.created else ("updated" if publication.changed else "unchanged")
    print(f"program {definition.code} {state} (version {publication.program.version})")
    return 0


def _print_problems(error) -> None:
    for problem in error.problems:
        print(f"{error.source}: {problem}", file=sys.stderr)


def _program_validate(args, settings: None) -> int:
    from .programs import ProgramError, load_program_file

    failed = 0
    for file in args.files:
        try:
            definition = load_program_file(file)
        except ProgramError as exc:
            _print_problems(exc)
            print(f"{file}: {len(exc.problems)} problem(s)", file=sys.stderr)
            failed += 1
            continue
        print(f"{file}: ok (program {definition.code}, {len(definition.tiers)} tiers)")
    return 1 if failed else 0


def _program_schema(args, settings: None) -> int:
    import json

    from .programs.document import json_schema

    text = json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


async def _publish(settings: Settings, definition, published_by: str = "cli"):
    from .domain.clock import utcnow
    from .services.programs import publish_program
    from .store.db import Database

    db = Database(settings.database_url)
    try:
        return await publish_program(db, definition, published_by=published_by, now=utcnow())
    finally:
        await db.dispose()


def _token(args, settings: Settings) -> int:
    longest = settings.token_lifetimes[args.role]
    if args.ttl > longest:
        print(f"error: --ttl {args.ttl} is longer than the server accepts for {args.role} tokens "
              f"({longest:.0f} seconds; see TIERUP_MAX_MEMBER_TOKEN_DAYS and TIERUP_MAX_STAFF_TOKEN_DAYS)",
              file=sys.stderr)
        return 2
    print(mint_token(settings.jwt_secret, sub=args.sub, program=args.program, role=Role(args.role),
                     ttl_seconds=args.ttl))
    return 0


def _export_schema(args, settings: Settings) -> int:
    from .api.schema import schema_sdl

    Path(args.output).write_text(schema_sdl(), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


def _each_program(settings: Settings, args, job) -> int:
    """Run `job(db, program, as_of, broker)` for the named program or every program; print its line."""
    from .domain.clock import utcnow
    from .events import create_broker
    from .services.programs import active_program, program_codes
    from .store.db import Database

    async def run() -> int:
        db = Database(settings.database_url)
        broker = create_broker(settings.broker_url)  # with Redis, connected servers push the events live
        await broker.start()
        try:
            for code in [args.program] if args.program else await program_codes(db):
                program = await active_program(db, code)
                if program is None:
                    print(f"tierup: no program {code!r}", file=sys.stderr)
                    return 1
                print(f"{code}: " + await job(db, program, args.as_of or utcnow(), broker))
            return 0
        finally:
            await broker.close()
            await db.dispose()

    return asyncio.run(run())


async def _evaluation_line(db, program, as_of, broker) -> str:
    from .services.tiers import evaluate_tiers

    return _evaluation_text(await evaluate_tiers(db, program, as_of=as_of, broker=broker))


async def _expiry_line(db, program, as_of, broker) -> str:
    from .services.expiry import expire_points

    return _expiry_text(await expire_points(db, program, as_of=as_of, broker=broker))


async def _rfm_line(db, program, as_of, broker) -> str:
    from .services.analytics import refresh_rfm

    return _rfm_text(await refresh_rfm(db, program, as_of=as_of))


async def _jobs_line(settings: Settings, db, program, as_of, broker) -> str:
    """Every job, as `tierup serve` runs them (services.jobs.run_jobs)."""
    from .services.jobs import run_jobs

    kept_days = settings.webhook_retention_days
    [run] = await run_jobs(db, as_of=as_of, deliveries_kept_days=kept_days,
                           private_targets=settings.webhooks_reach_private, broker=broker, program=program.code)
    webhooks = run.webhooks
    return "; ".join([_expiry_text(run.expiry), _evaluation_text(run.evaluation), _rfm_text(run.rfm_scored),
                      f"{_counted(run.membership_reminders, 'membership reminders')}, "
                      f"{_counted(run.birthday_gifts, 'birthday gifts')}, "
                      f"campaigns resumed reached {_counted(run.campaign_members_reached, 'members')}",
                      f"webhooks: {webhooks.delivered} delivered, {webhooks.retrying} to retry, "
                      f"{webhooks.failed} failed, {webhooks.cancelled} cancelled, "
                      f"{run.deliveries_removed} finished over {kept_days} days ago removed"])


def _evaluation_text(result) -> str:
    return (f"evaluated {result.evaluated}, kept {result.kept}, upgraded {result.upgraded}, "
            f"downgraded {result.downgraded}")


def _expiry_text(result) -> str:
    return (f"expired {result.points_expired} points of {_counted(result.members_affected, 'members')}, "
            f"{result.reminders} reminders sent")


def _rfm_text(scored: int) -> str:
    return f"RFM scored for {_counted(scored, 'members')}"


def _evaluate_tiers(args, settings: Settings) -> int:
    return _each_program(settings, args, _evaluation_line)


def _expire_points(args, settings: Settings) -> int:
    return _each_program(settings, args, _expiry_line)


def _jobs(args, settings: Settings) -> int:
    return _each_program(settings, args, functools.partial(_jobs_line, settings))


async def _on_program(settings: Settings, code: str, work) -> int:
    """`await work(db, program)` on the named program; 1 when there is no such program."""
    from .services.programs import active_program
    from .store.db import Database

    # The commands run on a program (seed, import, export) walk whole tables in one process: a page cache of
    # 64 MiB per connection (2 MiB by default) holds the indexes an import writes into, a thirtieth faster.
    db = Database(settings.database_url, page_cache_mib=64)
    try:
        program = await active_program(db, code)
        if program is None:
            print(f"tierup: no program {code!r}", file=sys.stderr)
            return 1
        return await work(db, program)
    finally:
        await db.dispose()


def _seed(args, settings: Settings) -> int:
    from .domain.clock import utcnow
    from .progress import Bars
    from .services.seed import AlreadySeeded, SeedPlan, seed
    from .store.migrate import upgrade

    if not (1 <= args.members <= 10_000_000 and 0 <= args.orders <= 100_000_000):
        print("tierup: --members must be 1–10,000,000 and --orders 0–100,000,000", file=sys.stderr)
        return 2
    upgrade(settings.database_url)
    asyncio.run(_prepare(settings, demo_member=False))

    async def run(db, program) -> int:
        try:
            with Bars() as bars:
                summary = await seed(db, program, SeedPlan(args.members, args.orders, args.seed), now=utcnow(),
                                     progress=bars.bar)
        except AlreadySeeded as exc:
            print(f"tierup: {exc}", file=sys.stderr)
            return 1
        print(", ".join(f"{value:,} {name}" for name, value in summary.items()))
        return 0

    return asyncio.run(_on_program(settings, args.program, run))


def _export_members(args, settings: Settings) -> int:
    from .domain.clock import utcnow
    from .domain.rfm import SEGMENTS
    from .progress import Bars
    from .services.export import export_members
    from .services.tags import tag_selection

    if args.segment is not None and args.segment not in SEGMENTS:
        print(f"tierup: --segment must be one of: {', '.join(SEGMENTS)}", file=sys.stderr)
        return 2

    def to(out):
        async def run(db, program) -> int:
            tag = await tag_selection(db, program, args.tag) if args.tag is not None else None
            if args.tag is not None and tag is None:
                print(f"tierup: no tag {args.tag!r} in program {program.code}", file=sys.stderr)
                return 2
            tiers = [tier.code for tier in program.definition.tiers]
            if args.tier is not None and args.tier not in tiers:
                print(f"tierup: --tier must be one of program {program.code}'s tiers: {', '.join(tiers)}",
                      file=sys.stderr)
                return 2
            with Bars() as bars:
                written = await export_members(
                    db, program, out, at=utcnow(), progress=bars.bar("exporting members"), segment=args.segment,
                    lifecycle_stage=args.stage, silent_for_days=args.silent_days, quadrant=args.quadrant,
                    tier_code=args.tier, channel=args.channel, tag=tag)
            print(f"{_counted(written, 'members')} exported", file=sys.stderr)
            return 0
        return asyncio.run(_on_program(settings, args.program, run))

    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            return to(out)
    return to(sys.stdout)


def _import(args, settings: Settings) -> int:
    from pathlib import Path

    from .domain.clock import utcnow
    from .progress import Bars
    from .services.importing import ImportRefused, import_files
    from .store.migrate import upgrade

    paths = {args.kind: Path(args.file)}
    if args.refunds is not None:
        if args.kind != "orders":
            print("tierup: --refunds goes with `tierup import orders`", file=sys.stderr)
            return 2
        paths["refunds"] = Path(args.refunds)
    for path in paths.values():
        if not path.is_file():
            print(f"tierup: no file {str(path)!r}", file=sys.stderr)
            return 2
    upgrade(settings.database_url)
    asyncio.run(_prepare(settings, demo_member=False))

    async def run(db, program) -> int:
        try:
            with Bars() as bars:
                imported = await import_files(db, program, paths, now=utcnow(), encoding=args.encoding,
                                              progress=bars.bar(f"importing {' and '.join(paths)}"))
        except ImportRefused as refused:
            for problem in refused.problems:
                print(problem, file=sys.stderr)
            more = refused.total - len(refused.problems)
            names = " and ".join(path.name for path in paths.values())
            print(f"tierup: {names}: {refused.total:,} problem(s){f' ({more:,} not shown)' if more else ''}; "
                  "nothing was imported", file=sys.stderr)
            for advice in refused.advice:
                print(f"tierup: {advice}", file=sys.stderr)
            return 1
        for kind, done in imported.items():
            _print_imported(kind, paths[kind].name, done)
        return 1 if any(done.refused for done in imported.values()) else 0

    return asyncio.run(_on_program(settings, args.program, run))


def _print_imported(kind: str, name: str, done) -> None:
    if done.rows == 0:
        print(f"nothing to import: {name} holds no {kind}")
    elif done.new == 0 and not done.refused:
        print(f"nothing new: the {kind[:-1]} of {name} was imported before" if done.rows == 1 else
              f"nothing new: all {done.rows:,} {kind} of {name} were imported before")
    else:
        print(f"{_counted(done.new, kind)} imported, {done.duplicates:,} imported before"
              + (f", {len(done.refused):,} refused" if done.refused else ""))
    for refusal in done.refused:
        print(f"refused: {refusal}", file=sys.stderr)


def _counted(number: int, kind: str) -> str:
    """'1 order', '2 orders' (`kind`: the plural)."""
    return f"{number:,} {kind if number != 1 else kind[:-1]}"


def _simulate(args, settings: Settings) -> int:
    from datetime import date, timedelta

    from .domain.activity import midnight
    from .programs import ProgramError, load_program_file
    from .services.programs import active_program, program_codes
    from .services.simulation import simulate
    from .store.db import Database

    try:
        draft = load_program_file(args.draft)
    except ProgramError as exc:
        _print_problems(exc)
        return 1

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            codes = await program_codes(db)
            code = args.program or (codes[0] if len(codes) == 1 else draft.code)
            live = await active_program(db, code)
            if live is None:
                print(f"tierup: no program {code!r}; name it with --program", file=sys.stderr)
                return 1
            tz = live.definition.zone
            start = midnight(args.start or date(1970, 1, 1), tz)
            end = midnight((args.end or date.today()) + timedelta(days=1), tz)
            result = await simulate(db, live, draft, start=start, end=end)
        finally:
            await db.dispose()
        print(f"replayed {result.reports:,} reports of {code!r}: live v{live.version} vs draft {draft.code!r}")
        rows = [("upgrades", result.live.upgrades, result.draft.upgrades),
                ("downgrades", result.live.downgrades, result.draft.downgrades),
                ("points issued", result.live.points_issued, result.draft.points_issued),
                ("outstanding points", result.live.outstanding_points, result.draft.outstanding_points)]
        rows += [(f"members at {t}", result.live.members_per_tier.get(t, 0), result.draft.members_per_tier.get(t, 0))
                 for t in dict.fromkeys([*(t.code for t in live.definition.tiers), *(t.code for t in draft.tiers)])]
        print(f"{'':<24}{'live':>14}{'draft':>14}")
        for label, left, right in rows:
            print(f"{label:<24}{left:>14,}{right:>14,}")
        print(f"members whose tier would change: {len(result.changed):,}")
        return 0

    return asyncio.run(run())


def _assets_fetch(args, settings: Settings) -> int:
    from .graphiql import AssetError, GraphiQLAssets

    assets = GraphiQLAssets(settings.asset_cache_dir, settings.npm_registry)
    try:
        assets.fetch_all()
    except AssetError as exc:
        print(f"tierup: {exc}", file=sys.stderr)
        return 1
    print(f"GraphiQL assets verified and cached in {settings.asset_cache_dir}")
    return 0


DEFAULT_PROGRAM = "classic"
DEMO_MEMBER = "demo-member"


def _serve(args, settings: Settings) -> int:
    import uvicorn

    from .store.migrate import upgrade

    upgrade(settings.database_url)
    demo_member = asyncio.run(_prepare(settings))
    if args.workers > 1 and settings.broker_url.startswith("memory:"):
        print("warning: with several workers and the in-memory broker, a subscriber only hears events of its own "
              "worker; set TIERUP_BROKER_URL=redis://…", file=sys.stderr)
    if not settings.production:
        _print_headers(settings, args.host, args.port, demo_member)
    from .observability import log_config, worker_metrics_directory

    with worker_metrics_directory(args.workers):
        uvicorn.run("tierup.app:create_app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=settings.log_level,
                    log_config=log_config(settings.log_level, settings.log_format),
                    ws_max_size=settings.max_body_bytes,  # a WebSocket message is bounded like a request body
                    ws_per_message_deflate=settings.ws_deflate)  # off by default: zlib state costs ~40 KiB a socket
    return 0


async def _prepare(settings: Settings, *, demo_member: bool = True) -> bool:
    """A database without programs gets the classic program and, in development, a demo member. Returns whether
    the default program has the demo member (a database an import prepared has none: it holds a shop's own)."""
    from .domain.clock import utcnow
    from .programs import bundled_program_path, load_program_file
    from .services.members import EnrolmentInput, enroll_member, is_enrolled
    from .services.programs import active_program, program_count
    from .store.db import Database

    db = Database(settings.database_url)
    try:
        if await program_count(db) == 0:
            definition = load_program_file(bundled_program_path(DEFAULT_PROGRAM))
            publication = await _publish(settings, definition, published_by="tierup serve")
            print(f"loaded the default program {definition.code!r} ({bundled_program_path(DEFAULT_PROGRAM)})")
            if demo_member and not settings.production:
                await enroll_member(db, publication.program, EnrolmentInput(external_id=DEMO_MEMBER,
                                    display_name="Demo Member"), now=utcnow())
        program = await active_program(db, DEFAULT_PROGRAM)
        return program is not None and await is_enrolled(db, program, DEMO_MEMBER)
    finally:
        await db.dispose()


def _print_headers(settings: Settings, host: str, port: int, demo_member: bool) -> None:
    week = 7 * 24 * 3600
    roles = ((Role.OPERATOR, "operator"), (Role.SERVICE, "shop-backend")) + (
        ((Role.MEMBER, DEMO_MEMBER),) if demo_member else ())
    print(f"\nGraphiQL: http://{host}:{port}/graphql   (development mode; tokens valid 7 days)")
    print("Paste one of these into GraphiQL's Headers tab:\n")
    for role, sub in roles:
        token = mint_token(settings.jwt_secret, sub=sub, program=DEFAULT_PROGRAM, role=role, ttl_seconds=week)
        print(f"  {role.value:<8}  {{\"Authorization\": \"Bearer {token}\"}}")
    if not demo_member:
        print(f"  {Role.MEMBER.value:<8}  (no demo member in this database; a member's token: "
              f"tierup token --role MEMBER --program {DEFAULT_PROGRAM} --sub EXTERNAL_ID)")
    print(flush=True)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
