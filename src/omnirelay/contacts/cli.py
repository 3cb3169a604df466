"""``omnirelay contacts import FILE --org ID``: a bulk import with a progress bar."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from omnirelay.config import get_settings
from omnirelay.contacts import importer, unit
from omnirelay.db import Database
from omnirelay.errors import DomainError
from omnirelay.tenancy.models import Organization

SHOWN_REASONS = 20


@click.group("contacts")
def contacts() -> None:
    """Contacts of the platform API (seed 004)."""


@contacts.command("import")
@click.option("--org", "organization_id", required=True, help="Organization id.")
@click.option("--batch", default=importer.BATCH, show_default=True, help="Rows per transaction.")
@click.option(
    "--parsers",
    default=importer.DEFAULT_PARSERS,
    show_default=True,
    help="Processes checking rows (phone numbers) while this one writes; 0: none.",
)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_file(organization_id: str, batch: int, parsers: int, path: Path) -> None:
    """Import contacts from FILE.csv (a header line: phone, vkId, ..., variable names or
    ids) or FILE.jsonl (one object a line, the same keys, or `variables`: [{name, value}]).
    A row whose channel id a contact has goes into that contact (merged); a bad row is
    refused with its reason and the others go on."""
    try:
        fmt = importer.format_of(path.name)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    db = Database(get_settings().database_url)
    console = Console(stderr=True)
    try:
        with db.read() as session:
            if session.get(Organization, organization_id) is None:
                raise click.ClickException(f"no organization {organization_id}")
            variables = importer.variable_keys(session, organization_id)
        with path.open(encoding="utf-8-sig", newline="") as f:
            total = sum(1 for line in f if line.strip()) - (1 if fmt == "csv" else 0)
        summary = importer.Summary()
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8,.0f} rows/s"),
            TimeRemainingColumn(),
        )
        with (
            path.open(encoding="utf-8-sig", newline="") as f,
            Progress(*columns, console=console) as progress,
        ):
            task = progress.add_task("import", total=max(total, 0), rate=0.0)
            chunks = importer.batches(importer.read_rows(f, fmt), batch)
            for parsed in importer.parse_in_processes(chunks, variables, parsers):

                def work(s: Session, parsed: importer.Parsed = parsed) -> importer.Summary:
                    return importer.import_parsed(s, organization_id, parsed, variables)

                summary.add(unit.run(db, work))
                progress.update(task, advance=parsed.size)
                elapsed = progress.tasks[0].elapsed or 0.0
                progress.update(task, rate=summary.rows / elapsed if elapsed else 0.0)
    finally:
        db.dispose()
    click.echo(
        f"rows {summary.rows}: created {summary.created}, merged {summary.merged}, "
        f"refused {summary.refused}"
    )
    for reason in summary.reasons[:SHOWN_REASONS]:
        click.echo(f"  line {reason['line']}: {reason['reason']}")
    if summary.refused > SHOWN_REASONS:
        click.echo(f"  ... and {summary.refused - SHOWN_REASONS} more refused")
