"""The statements of the queue's hot paths (create, claim, renew, finish), built once per dialect.

Building a SQLAlchemy statement and computing its cache key costs more than running it on a
warm connection, so each is built on first use and kept: SQLAlchemy's compiled cache then
serves its SQL, and asyncpg prepares it once per connection. Lists of ids are one array
parameter on PostgreSQL (`= ANY(:ids)`: one prepared statement whatever the length) and an
expanding IN on SQLite.

Statuses the partial indexes are defined on are inlined (`literal_execute`): a prepared
statement's generic plan cannot use `ix_jobs_claim WHERE status = 'pending'` for a parameter.
"""

from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    all_,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from job_svc.domain import HoldKind, JobStatus
from job_svc.holds import QUEUE_HOLDING_STATES
from job_svc.tables import JOB_STATUS, breaker_states, job_dependencies, job_pauses, jobs
from job_svc.wakeups import CHANNEL


def status_literal(status: JobStatus, name: str | None = None) -> Any:
    return bindparam(name or f"status_{status.value}", status, type_=JOB_STATUS, literal_execute=True)


def in_list(column: Any, name: str, postgres: bool) -> ColumnElement[bool]:
    if postgres:
        return column == any_(bindparam(name, type_=postgresql.ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


def dependency_list(job_id: Any, postgres: bool) -> Any:
    """A job's dependencies as one comma-separated string (names never hold a comma), so that
    a statement returning jobs brings their dependencies along."""
    aggregate = func.string_agg(job_dependencies.c.dependency, ",") if postgres else func.group_concat(job_dependencies.c.dependency, ",")
    return select(aggregate).where(job_dependencies.c.job_id == job_id).scalar_subquery().label("dependency_list")


def held_lease(postgres: bool) -> list[ColumnElement[bool]]:
    """The jobs of :ids whose lease :worker_id still holds at :now."""
    return [
        in_list(jobs.c.id, "ids", postgres),
        jobs.c.status == status_literal(JobStatus.PROCESSING),
        jobs.c.lease_owner == bindparam("worker_id"),
        jobs.c.lease_expires_at >= bindparam("now"),
    ]


@cache
def claim(postgres: bool, by_dependencies: bool, by_type: bool) -> Any:
    """Leases up to :max_jobs runnable jobs in claim order, returning them with their
    dependencies. Runnable is `pending` and due, nothing more (see JobTx.claim)."""
    candidate = jobs.alias("candidate")
    conditions = [candidate.c.status == status_literal(JobStatus.PENDING), candidate.c.run_after <= bindparam("now")]
    if by_dependencies:
        other = job_dependencies.alias("other")
        outside = other.c.dependency != all_(bindparam("dependencies", type_=postgresql.ARRAY(String))) if postgres else other.c.dependency.not_in(bindparam("dependencies", expanding=True))
        conditions.append(~exists().where(other.c.job_id == candidate.c.id, outside))
    if by_type:
        conditions.append(candidate.c.job_type == bindparam("b_job_type"))
    chosen = (
        select(candidate.c.id)
        .where(*conditions)
        .order_by(candidate.c.priority, candidate.c.run_after, candidate.c.created_at, candidate.c.id)
        .limit(bindparam("max_jobs"))
    )
    if postgres:
        chosen = chosen.with_for_update(skip_locked=True, of=candidate)
    return (
        update(jobs)
        .where(jobs.c.id.in_(chosen))
        .values(
            status=status_literal(JobStatus.PROCESSING, "processing"), lease_owner=bindparam("worker_id"),
            lease_expires_at=bindparam("b_lease_expires_at"), updated_at=bindparam("now"),
        )
        .returning(*jobs.c, dependency_list(jobs.c.id, postgres))
    )


@cache
def renew(postgres: bool) -> Any:
    return (
        update(jobs)
        .where(*held_lease(postgres))
        .values(lease_expires_at=bindparam("b_lease_expires_at"), updated_at=bindparam("now"))
        .returning(jobs.c.id)
    )


def _result_of_this_job(postgres: bool) -> Any:
    """The job's entry in :results, a JSON object of job id -> result (NULL when absent), so
    one UPDATE stores a different result per job."""
    if postgres:
        return func.jsonb_extract_path(cast(bindparam("results", type_=Text), postgresql.JSONB), jobs.c.id)
    return func.json_extract(bindparam("results", type_=Text), literal('$."', Text) + jobs.c.id + literal('"', Text))


@cache
def complete(postgres: bool, whole_rows: bool) -> Any:
    """Completes the held jobs among :ids: "set state if still held", so a late result of a
    lost lease changes nothing. Returns what the outbox needs (and the whole job if asked)."""
    returned = (*jobs.c,) if whole_rows else (jobs.c.id,)
    return (
        update(jobs)
        .where(*held_lease(postgres))
        .values(
            status=status_literal(JobStatus.COMPLETED, "completed"), lease_owner=None, lease_expires_at=None,
            updated_at=bindparam("now"), result=_result_of_this_job(postgres),
        )
        .returning(*returned, dependency_list(jobs.c.id, postgres))
    )


@cache
def lock_held(postgres: bool) -> Any:
    """The held jobs among :ids, row-locked, with their dependencies (failures plan from them)."""
    query = select(*jobs.c, dependency_list(jobs.c.id, postgres)).where(*held_lease(postgres))
    return query.with_for_update(of=jobs) if postgres else query


@cache
def apply_failure() -> Any:
    """One failure's plan, for an executemany over the failed jobs."""
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("job_id"))
        .values(
            status=bindparam("new_status", type_=JOB_STATUS), attempts=bindparam("new_attempts"),
            run_after=bindparam("new_run_after"), provider_failures=bindparam("new_provider_failures"),
            last_error=bindparam("new_last_error"), lease_owner=None, lease_expires_at=None, updated_at=bindparam("now"),
        )
    )


@cache
def insert_jobs(postgres: bool) -> Any:
    """A multi-row INSERT (SQLAlchemy's insertmanyvalues) that skips request ids already used
    and returns the ids it inserted."""
    statement = (postgresql.insert if postgres else sqlite.insert)(jobs)
    return statement.on_conflict_do_nothing(
        index_elements=["request_id"], index_where=jobs.c.request_id.is_not(None)
    ).returning(jobs.c.id)


@cache
def holds_apply(postgres: bool) -> Select[Any]:
    """Whether any hold applies to jobs calling :dependencies or of :campaign_ids: a breaker
    state that holds new jobs, or a standing manual or campaign pause. On PostgreSQL the same
    statement announces the new jobs to waiting claims (NOTIFY :payload, sent at commit)."""
    breaker_holds = exists().where(
        in_list(breaker_states.c.dependency, "dependencies", postgres), breaker_states.c.state.in_(QUEUE_HOLDING_STATES)
    )
    pauses = exists().where(
        or_(
            and_(job_pauses.c.kind == HoldKind.MANUAL, in_list(job_pauses.c.key, "dependencies", postgres)),
            and_(job_pauses.c.kind == HoldKind.CAMPAIGN, in_list(job_pauses.c.key, "campaign_ids", postgres)),
        )
    )
    columns: list[Any] = [or_(breaker_holds, pauses).label("held")]
    if postgres:
        columns.append(func.pg_notify(literal(CHANNEL, Text), bindparam("payload", type_=Text)).label("notified"))
    return select(*columns)
