"""Admin API: the organization's jobs, dead letters and their retry."""

from __future__ import annotations

from fastapi import APIRouter

from omnirelay import queue
from omnirelay.errors import NotFound
from omnirelay.queue.schemas import JobList, JobOut, JobStatus
from omnirelay.surfaces.admin.deps import Caller, Ctx, Limit, Offset, RowId
from omnirelay.tenancy.auth import require_admin

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("", response_model=JobList)
def list_jobs(
    ctx: Ctx,
    caller: Caller,
    status: JobStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> JobList:
    """Jobs of the organization, newest first; `status=dead` lists the dead letters."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        jobs = queue.list_jobs(
            session,
            status=status,
            organization_id=caller.organization_id,
            limit=limit,
            offset=offset,
        )
        return JobList(items=[JobOut.model_validate(j) for j in jobs], limit=limit, offset=offset)


@router.post("/{job_id}/retry", response_model=JobOut)
def retry_job(ctx: Ctx, caller: Caller, job_id: RowId) -> JobOut:
    """Send a dead letter back to the queue with its attempts reset."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        job = queue.retry_job(session, job_id, organization_id=caller.organization_id)
        if job is None:
            raise NotFound("dead_job_not_found", f"no dead job {job_id} in this organization")
        return JobOut.model_validate(job)
