"""Job handlers of contacts: an import, one batch of rows per job."""

from __future__ import annotations

from itertools import islice

from sqlalchemy.orm import Session

from omnirelay.contacts import importer
from omnirelay.contacts.models import ContactImport
from omnirelay.db import utcnow
from omnirelay.queue import JobContext, enqueue, tasks

IMPORT = "contacts.import"


def start_import(session: Session, organization_id: str, fmt: str, data: str) -> ContactImport:
    """Record the import and queue its first batch, in the caller's transaction."""
    total = sum(1 for _ in importer.read_rows(data, fmt))
    row = ContactImport(organization_id=organization_id, format=fmt, data=data, total_rows=total)
    session.add(row)
    session.flush()
    enqueue(session, IMPORT, {"import_id": row.id}, organization_id=organization_id)
    return row


@tasks.task(IMPORT)
def import_batch(session: Session, job: JobContext) -> None:
    """The next batch of the import's rows; queues the one after it, or ends the import.
    Its counts are committed with the batch, so what it reports is what was written."""
    run = session.get(ContactImport, str(job.payload["import_id"]), with_for_update=True)
    if run is None or run.status == "done" or run.data is None:
        return
    rows = list(
        islice(
            importer.read_rows(run.data, run.format), run.processed, run.processed + importer.BATCH
        )
    )
    summary = importer.import_batch(session, run.organization_id, rows)
    run.status = "running"
    run.processed += len(rows)
    run.created += summary.created
    run.merged += summary.merged
    run.refused += summary.refused
    room = importer.MAX_REASONS - len(run.errors)
    if room > 0 and summary.reasons:
        run.errors = [*run.errors, *summary.reasons[:room]]
    if rows and run.processed < run.total_rows:
        enqueue(session, IMPORT, {"import_id": run.id}, organization_id=run.organization_id)
        return
    run.status = "done"
    run.data = None  # the file is not kept once imported
    run.finished_at = utcnow()
