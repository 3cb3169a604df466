"""The ``omnirelay`` command: serve, worker, migrate, and operator commands."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import click

from omnirelay.config import Settings, get_settings
from omnirelay.contacts.cli import contacts as contacts_cli
from omnirelay.db import Database
from omnirelay.migrate import upgrade
from omnirelay.tenancy import repository as tenancy_repo
from omnirelay.tenancy import service as tenancy

DEMO_CREDENTIALS = Path("var") / "demo-credentials.json"


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


@click.group()
def main() -> None:
    """omnirelay: one server for SMS, WhatsApp, Viber, VK, Telegram, email and web chat."""


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema to the newest version."""
    settings = get_settings()
    upgrade(settings.database_url)
    click.echo("database is up to date")


@main.command()
@click.option("--host", default=None, help="Address to listen on (default OMNIRELAY_HOST).")
@click.option("--port", default=None, type=int, help="Port (default OMNIRELAY_PORT).")
@click.option("--no-workers", is_flag=True, help="Serve HTTP only; run `omnirelay worker` apart.")
@click.option(
    "--processes",
    type=click.IntRange(1, 2),
    default=1,
    help="2: the workers in a child process (a second core; ADR 34).",
)
def serve(host: str | None, port: int | None, no_workers: bool, processes: int) -> None:
    """Run the HTTP API (and, unless --no-workers, the workers) in this process."""
    import uvicorn

    from omnirelay.app import create_app
    from omnirelay.workerchild import WorkerChild

    settings = get_settings()
    _setup_logging(settings)
    child = WorkerChild().start() if processes == 2 and not no_workers else None
    app = create_app(settings, run_workers=not no_workers and child is None)
    try:
        _run_http(uvicorn, app, settings, host, port)
    finally:
        if child is not None:
            child.stop()


def _run_http(
    uvicorn: Any, app: Any, settings: Settings, host: str | None, port: int | None
) -> None:
    from omnirelay.httpserver import CanonicalHttpTools

    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        # Both keep header names canonical on the wire (surfaces/headers.py, ADR 24);
        # httptools, through omnirelay.httpserver, costs less CPU per request and writes
        # an answer in one system call (ADR 41). The middleware sends Date itself.
        http=CanonicalHttpTools if settings.http_parser == "httptools" else "h11",
        server_header=False,
        date_header=False,
    )
    _quiet_server(uvicorn)(config).run()


def _quiet_server(uvicorn: Any) -> Any:
    class QuietServer(uvicorn.Server):  # type: ignore[misc]
        """uvicorn's server, ticking once a second instead of ten times: its tick only
        refreshes the Date header (the middleware sends its own) and notices a stop
        signal, and ten a second were half of an idle PostgreSQL ``serve`` (ADR 34). A
        stop now takes up to a second longer to begin."""

        async def main_loop(self) -> None:
            counter = 0
            while not await self.on_tick(counter):
                counter = (counter + 10) % 864000  # on_tick's "once a second" work each time
                await asyncio.sleep(1.0)

    return QuietServer


@main.command()
@click.option("--exit-with-parent", type=int, default=None, hidden=True)
def worker(exit_with_parent: int | None) -> None:
    """Run workers only (jobs and webhook deliveries) until SIGTERM/SIGINT."""
    from omnirelay.runtime import Runtime

    if exit_with_parent is not None:  # the child of `serve --processes 2`
        from omnirelay.workerchild import exit_with_parent as follow

        follow(exit_with_parent)
    settings = get_settings()
    _setup_logging(settings)
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    runtime = Runtime(db, settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runtime.start()
    click.echo(f"worker running (concurrency {settings.worker_concurrency})", err=True)
    stop.wait()
    runtime.stop()
    db.dispose()


@main.group()
def admin() -> None:
    """Operator commands."""


def _org_credentials(created: tenancy.NewOrganization) -> dict[str, Any]:
    return {
        "organization_id": created.organization.id,
        "organization_name": created.organization.name,
        "subscription_keys": dict(created.subscription_keys),
        "admin_email": created.admin.email if created.admin else None,
        "access_token": created.access_token,
        "api_token": created.api_token,
        # account_sid, auth_token (call-backs, /3.0); gateway_account_token (seed 002)
        **created.credentials,
    }


def _print_credentials(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"organization      {data['organization_name']} ({data['organization_id']})")
    click.echo(f"admin user        {data['admin_email']}")
    click.echo(f"subscription key  {data['subscription_keys']['primary']}  (primary)")
    click.echo(f"subscription key  {data['subscription_keys']['secondary']}  (secondary)")
    click.echo(f"access token      {data['access_token']}  (/api)")
    click.echo(f"api token         {data.get('api_token')}  (/v3, /user: 'Token <api token>')")
    if data.get("account_sid"):
        click.echo(f"account SID       {data['account_sid']}  (/3.0, HTTP Basic user)")
        click.echo(f"auth token        {data['auth_token']}  (/3.0, HTTP Basic password)")
    if data.get("gateway_device_token"):
        click.echo(
            f"device token      {data['gateway_device_token']}  "
            "(WhatsApp gateway: /send, /qr, /device; sandbox device)"
        )
    if data.get("gateway_account_token"):
        click.echo(
            f"gateway token     {data['gateway_account_token']}  "
            "(WhatsApp gateway account token: /get-devices, /add-device)"
        )


def _create_org(name: str, admin_email: str) -> dict[str, Any]:
    settings = get_settings()
    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            created = tenancy.create_organization(
                session, name, admin_email=admin_email, admin_name="Admin", created_via="cli"
            )
        return _org_credentials(created)
    finally:
        db.dispose()


@admin.command("create-org")
@click.option("--name", required=True, help="Organization name.")
@click.option("--admin-email", default="admin@example.com", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_org(name: str, admin_email: str, as_json: bool) -> None:
    """Create an organization with an admin user; print every credential (shown once)."""
    _print_credentials(_create_org(name, admin_email), as_json)


@admin.command("housekeeping")
def housekeeping() -> None:
    """Sweep now: expired idempotency keys and uploads no message needs any more (the
    workers do this every OMNIRELAY_HOUSEKEEPING_INTERVAL_SECONDS)."""
    from omnirelay.housekeeping.tasks import run_once

    settings = get_settings()
    db = Database(settings.database_url)
    try:
        swept = run_once(db, settings)
    finally:
        db.dispose()
    click.echo(
        f"removed {swept.idempotency_keys} expired idempotency keys, {swept.files} unused uploads"
    )


@admin.command("create-workspace")
@click.option("--name", required=True)
@click.option("--org", "orgs", multiple=True, required=True, help="Organization id (repeat).")
@click.option("--json", "as_json", is_flag=True)
def create_workspace(name: str, orgs: tuple[str, ...], as_json: bool) -> None:
    """Create a workspace over organizations and print its access token (shown once)."""
    settings = get_settings()
    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            created = tenancy.create_workspace(session, name, list(orgs))
    finally:
        db.dispose()
    data = {"workspace_id": created.workspace.id, "workspace_token": created.token}
    click.echo(json.dumps(data) if as_json else f"workspace token   {created.token}")


def _demo_callbacks(organization_id: str) -> None:
    """A call-back profile to try /3.0 with: one option served by one agent, all week."""
    from omnirelay.callbacks import service as cb

    db = Database(get_settings().database_url)
    try:
        with db.transaction() as session:
            week = {"day_of_week": list(range(7)), "start_time": ["08:00"], "end_time": ["20:00"]}
            values = {"name": "Support", "sms": True, "scheduling": True, "entries": [week]}
            profile = cb.create_profile(session, organization_id, values)
            option = cb.add_option(session, organization_id, profile.sid, {"name": "Sales"})
            cb.join_agent(session, organization_id, option.sid, "Demo agent")
    finally:
        db.dispose()


def _demo_email(organization_id: str) -> None:
    """A sandbox email connection, so /v3 email steps work offline (docs/channels/email.md)."""
    from omnirelay.connections import service as connections

    db = Database(get_settings().database_url)
    try:
        with db.transaction() as session:
            connections.create(
                session,
                organization_id,
                channel="email",
                provider="sandbox",
                name="Sandbox email",
                settings={},
                senders=["demo@example.com"],
            )
    finally:
        db.dispose()


def _demo_device(organization_id: str) -> str:
    """A sandbox WhatsApp device to try the gateway (seed 002) with; its token."""
    from omnirelay.db import utcnow
    from omnirelay.gateway import service as gateway

    db = Database(get_settings().database_url)
    try:
        with db.transaction() as session:
            number = "62899" + organization_id[-8:].translate(str.maketrans("abcdef", "123456"))
            _, token = gateway.add_device(
                session, organization_id, {"name": "Demo device", "device": number}, utcnow()
            )
            return token
    finally:
        db.dispose()


def _organization_exists(organization_id: str) -> bool:
    settings = get_settings()
    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            return tenancy_repo.get_organization(session, organization_id) is not None
    finally:
        db.dispose()


@main.command()
def demo() -> None:
    """Create the demo organization on first use and print its credentials.

    The credentials are kept in var/demo-credentials.json (a local, development-only
    file) because the database stores secrets hashed and could not show them again.
    """
    data = json.loads(DEMO_CREDENTIALS.read_text()) if DEMO_CREDENTIALS.exists() else None
    if data is None or not _organization_exists(data["organization_id"]):
        # First run, or the database was reset: make a fresh demo organization.
        data = _create_org("Demo", "demo@example.com")
        _demo_callbacks(data["organization_id"])
        _demo_email(data["organization_id"])
        data["gateway_device_token"] = _demo_device(data["organization_id"])
        DEMO_CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
        DEMO_CREDENTIALS.write_text(json.dumps(data, indent=2))
        DEMO_CREDENTIALS.chmod(0o600)
    settings = get_settings()
    click.echo("\n=== omnirelay demo organization ===")
    _print_credentials(data, as_json=False)
    base = f"http://{settings.host}:{settings.port}"
    click.echo(
        f"\ntry:  curl {base}/api/me \\\n"
        f"        -H 'Ocp-Apim-Subscription-Key: {data['subscription_keys']['primary']}' \\\n"
        f"        -H 'Authorization: {data['access_token']}'\n"
        f"send: curl {base}/v3/message/sendSMS \\\n"
        f"        -H 'Authorization: Token {data['api_token']}' \\\n"
        f"        -H 'Content-Type: application/json' \\\n"
        f'        -d \'{{"sender": "SANDBOX", "phone": "79161234567", "text": "Hello"}}\'\n'
        f"whatsapp: curl {base}/qr -H 'Authorization: {data.get('gateway_device_token')}'"
        f"   (the sandbox phone scans it in 5 s), then\n"
        f"      curl {base}/send -H 'Authorization: {data.get('gateway_device_token')}' "
        f"-d target=081234567890 -d message=Hello\n"
        f"watch: omnirelay tail    (statuses as they change)\n"
        f"docs: {base}/api/docs  {base}/v3/docs  {base}/3.0/docs  {base}/user/docs\n"
    )


@main.command()
@click.option("--org", "organization_id", default=None, help="Only this organization's.")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Print what changed in the last minute and exit.")
def tail(organization_id: str | None, interval: float, once: bool) -> None:
    """Print message statuses as they change: time, id, status, channel, step, error."""
    import time
    from datetime import timedelta

    from omnirelay.db import utcnow
    from omnirelay.messaging import repository as messages

    db = Database(get_settings().database_url)
    after = utcnow() - timedelta(minutes=1)
    try:
        while True:
            with db.transaction() as session:
                rows = messages.changed_since(session, after, organization_id)
                for row in rows:
                    error = f" {row.code} {row.error}" if row.error else ""
                    click.echo(
                        f"{row.updated_at:%H:%M:%S.%f}"[:-3]
                        + f" {row.id} {row.status:<11} {row.channel:<8} step {row.step}"
                        + (f" custom_id={row.custom_id}" if row.custom_id else "")
                        + error
                    )
                    after = max(after, row.updated_at)
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        db.dispose()


@main.group()
def callbacks() -> None:
    """Call-back configuration (seed 003)."""


@callbacks.command("import")
@click.option("--org", "organization_id", required=True, help="Organization id.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def callbacks_import(organization_id: str, path: Path) -> None:
    """Create a profile from a JSON file: the profile's fields plus `options` (each with
    `agents`: names) and `questions`. Prints the SIDs made."""
    from omnirelay.callbacks import service as cb
    from omnirelay.callbacks.schemas import OptionIn, ProfileIn, QuestionIn
    from omnirelay.errors import DomainError

    spec = json.loads(path.read_text())
    options = spec.pop("options", [])
    questions = spec.pop("questions", [])
    if not _organization_exists(organization_id):
        raise click.ClickException(f"no organization {organization_id}")
    db = Database(get_settings().database_url)
    try:
        with db.transaction() as session:
            values = ProfileIn.model_validate(spec).model_dump(exclude_unset=True, mode="json")
            profile = cb.create_profile(session, organization_id, values)
            out: dict[str, Any] = {"profile": profile.sid, "options": {}, "questions": []}
            for item in options:
                agents = item.pop("agents", [])
                opt = cb.add_option(
                    session,
                    organization_id,
                    profile.sid,
                    OptionIn.model_validate(item).model_dump(),
                )
                out["options"][opt.name] = opt.sid
                for name in agents:
                    cb.join_agent(session, organization_id, opt.sid, name)
            for item in questions:
                q = QuestionIn.model_validate(item).model_dump()
                out["questions"].append(
                    cb.add_question(session, organization_id, profile.sid, q).sid
                )
    except (DomainError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        db.dispose()
    click.echo(json.dumps(out, indent=2))


main.add_command(contacts_cli)
