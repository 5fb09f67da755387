"""The statements of the queue's hot paths (create, claim, renew, finish) and of those that walk
many jobs (retention, redrive, queue status), built once per dialect.

Building a SQLAlchemy statement and computing its cache key costs more than running it on a
warm connection, so each is built on first use and kept: SQLAlchemy's compiled cache then
serves its SQL, and asyncpg prepares it once per connection. Lists of ids are one array
parameter on PostgreSQL (`= ANY(:ids)`: one prepared statement whatever the length) and an
expanding IN on SQLite.

Statuses are written into the SQL as constants, not parameters: a prepared statement's generic
plan cannot use `ix_jobs_claim WHERE status = 'pending'` for a parameter. They are part of the
compiled statement (a `literal_execute` parameter would be rendered again on every execution).
"""

from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    Text,
    all_,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    true,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from job_svc.domain import MAX_PRIORITY, MIN_PRIORITY, HoldKind, JobStatus
from job_svc.holds import QUEUE_HOLDING_STATES
from job_svc.tables import (
    JOB_STATUS,
    UtcDateTime,
    breaker_outbox,
    breaker_states,
    job_dependencies,
    job_holds,
    job_pauses,
    jobs,
    status_literal,
    statuses_literal,
)
from job_svc.wakeups import CHANNEL


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


def _lease_ended(table: Any) -> list[ColumnElement[bool]]:
    """Processing jobs of `table` whose lease ended before :now (`ix_jobs_lease`)."""
    return [table.c.status == status_literal(JobStatus.PROCESSING), table.c.lease_expires_at < bindparam("now")]


@cache
def expired_leases() -> Any:
    """Up to :limit jobs whose lease ended."""
    return select(jobs.c.id).where(*_lease_ended(jobs)).limit(bindparam("limit"))


def _among(chosen: Select[Any], postgres: bool) -> ColumnElement[bool]:
    """`jobs.id` among the ids `chosen` finds. PostgreSQL: `= ANY(ARRAY(chosen))`, an InitPlan
    run once whose ids probe jobs_pkey; as `IN (chosen)` a generic plan, not knowing the
    subquery's LIMIT, hash-joined its few ids with a Seq Scan of all jobs."""
    return jobs.c.id == any_(func.array(chosen.scalar_subquery())) if postgres else jobs.c.id.in_(chosen)


@cache
def next_due(postgres: bool) -> Any:
    """The earliest run time after :now of a pending job (scheduled or backing off). It runs
    each time a claim timer fires. On PostgreSQL, one probe of ix_jobs_claim per priority
    (MIN_PRIORITY..MAX_PRIORITY), within which the index is in run time order: min(run_after)
    over the index read every pending job (55-200 ms at 180,000)."""
    later = [jobs.c.status == status_literal(JobStatus.PENDING), jobs.c.run_after > bindparam("now")]
    if not postgres:
        return select(func.min(jobs.c.run_after)).where(*later)
    priority = func.generate_series(MIN_PRIORITY, MAX_PRIORITY).table_valued("value").render_derived(name="priority")
    earliest = select(jobs.c.run_after).where(*later, jobs.c.priority == priority.c.value).order_by(jobs.c.run_after).limit(1).lateral("earliest")
    return select(func.min(earliest.c.run_after)).select_from(priority.join(earliest, true()))


@cache
def claim(postgres: bool, by_dependencies: bool, by_type: bool) -> Any:
    """Leases up to :max_jobs runnable jobs in claim order, stamping `claimed_at` (a finish times
    the run from it), returning them with their dependencies. Runnable is `pending` and due,
    nothing more (see JobTx.claim). Takes nothing while an expired lease waits to be returned to
    the queue (its job may come first): the caller then requeues and claims again."""
    candidate, lapsed = jobs.alias("candidate"), jobs.alias("lapsed")
    conditions = [
        candidate.c.status == status_literal(JobStatus.PENDING), candidate.c.run_after <= bindparam("now"),
        ~exists().where(*_lease_ended(lapsed)),
    ]
    if by_dependencies:
        other = job_dependencies.alias("other")
        outside = other.c.dependency != all_(bindparam("dependencies", type_=postgresql.ARRAY(String))) if postgres else other.c.dependency.not_in(bindparam("dependencies", expanding=True))
        # A count per candidate (`pk_job_dependencies`), not NOT EXISTS: PostgreSQL turns that
        # into an anti-join and, when the filter looks selective, seq-scans all of
        # job_dependencies before taking the first candidate (O(table) per claim).
        calls_outside = select(func.count()).where(other.c.job_id == candidate.c.id, outside).scalar_subquery()
        conditions.append(calls_outside == 0)
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
        .where(_among(chosen, postgres))
        .values(
            status=status_literal(JobStatus.PROCESSING), lease_owner=bindparam("worker_id"),
            lease_expires_at=bindparam("b_lease_expires_at"), updated_at=bindparam("now"), claimed_at=bindparam("now"),
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


# What a completion returns unless whole rows are asked for: what job_run_seconds needs.
_RUN_COLUMNS = (jobs.c.id, jobs.c.job_type, jobs.c.claimed_at)


def _completion(postgres: bool) -> Any:
    """The UPDATE that completes the held jobs among :ids, with their results."""
    return update(jobs).where(*held_lease(postgres)).values(**_completion_values(postgres))


def _completion_values(postgres: bool) -> dict[str, Any]:
    return {
        "status": status_literal(JobStatus.COMPLETED), "lease_owner": None, "lease_expires_at": None,
        "updated_at": bindparam("now"), "result": _result_of_this_job(postgres),
    }


@cache
def complete(postgres: bool, whole_rows: bool) -> Any:
    """Completes the held jobs among :ids ("set state if still held", so a late result of a
    lost lease changes nothing), drops their holds and records a success per dependency in the
    outbox for the jobs named in :durations (those whose worker did not record its outcomes
    itself). Returns the completed jobs (whole when asked for, else their id, type and claim
    time: what job_run_seconds needs) with their dependencies.

    On PostgreSQL that is one statement (data-modifying CTEs); SQLite runs the UPDATE alone and
    `complete_holds` and `complete_outcomes` after it."""
    returned = (*jobs.c,) if whole_rows else _RUN_COLUMNS
    statement = _completion(postgres)
    if not postgres:
        return statement.returning(*returned, dependency_list(jobs.c.id, postgres))
    done, gone, outcomes = _completion_ctes(statement.returning(*returned))
    return select(*done.c, dependency_list(done.c.id, postgres)).add_cte(gone, outcomes)


def _completion_ctes(completion: Any) -> tuple[Any, Any, Any]:
    """PostgreSQL: `complete`'s data-modifying CTEs around `completion` (its UPDATE ...
    RETURNING): `done`, the jobs it completed; `holds_gone`, their holds; `outcomes`, the
    outbox rows of their successes."""
    done = completion.cte("done")
    gone = delete(job_holds).where(job_holds.c.job_id.in_(select(done.c.id))).cte("holds_gone")
    durations = cast(bindparam("durations", type_=Text), postgresql.JSONB)
    duration = cast(func.jsonb_extract_path_text(durations, job_dependencies.c.job_id), Float)
    callers = cast(bindparam("caller_request_ids", type_=Text), postgresql.JSONB)
    outcomes = (
        insert(breaker_outbox)
        .from_select(
            ["dependency", "success", "duration_s", "created_at", "request_id"],
            select(
                job_dependencies.c.dependency, true(), duration, bindparam("now", type_=UtcDateTime),
                func.jsonb_extract_path_text(callers, job_dependencies.c.job_id),
            ).where(job_dependencies.c.job_id.in_(select(done.c.id)), durations.has_key(job_dependencies.c.job_id)),
        )
        .cte("outcomes")
    )
    return done, gone, outcomes


@cache
def complete_and_claim(by_dependencies: bool, by_type: bool) -> Any:
    """PostgreSQL: `complete` (without whole rows) and then `claim`, as one statement: FinishJobs
    with completions only and a next claim, in one round trip. The completion's CTEs are
    `complete`'s; the claim's UPDATE is `claim`'s, as one more CTE (`claimed`). Their rows never
    meet: the completion takes jobs processing under :worker_id's lease, the claim pending
    ones. Answers one row per job (UNION ALL), `completed` telling them apart: a claimed job
    whole, with its dependencies (as `claim` returns it); a completed one's id, type, claim time
    and dependencies (as `complete` returns them), its other columns NULL.

    Both parts see the statement's one snapshot, so the claim does not see the completions, as
    it would after they committed. It takes the same jobs all the same: a completion never
    makes a job claimable (it ends a job that was processing, drops that job's own holds and
    writes outbox rows; no other job waits on it), nor does it leave an expired lease behind to
    hold the claim back. The statement is atomic: it applies both parts or neither."""
    done, gone, outcomes = _completion_ctes(_completion(True).returning(*_RUN_COLUMNS))
    claimed = claim(True, by_dependencies, by_type).cte("claimed")
    completed = select(
        true().label("completed"), *(done.c[column.name] if column.name in done.c else null() for column in jobs.c),
        dependency_list(done.c.id, True),
    )
    return union_all(select(false().label("completed"), *claimed.c), completed).add_cte(gone, outcomes)


@cache
def complete_holds() -> Any:
    """SQLite: the holds of the jobs just completed."""
    return delete(job_holds).where(job_holds.c.job_id.in_(bindparam("ids", expanding=True)))


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
def insert_jobs_sqlite() -> Any:
    """A multi-row INSERT (SQLAlchemy's insertmanyvalues) that skips request ids already used
    and returns the ids it inserted."""
    return sqlite.insert(jobs).on_conflict_do_nothing(
        index_elements=["request_id"], index_where=jobs.c.request_id.is_not(None)
    ).returning(jobs.c.id)


def _array(name: str, item_type: Any) -> Any:
    return cast(bindparam(name), postgresql.ARRAY(item_type))


@cache
def insert_jobs_postgres() -> Any:
    """PostgreSQL: new jobs and their dependencies, and whether a hold applies to them, in one
    statement whatever their number: each column is one array parameter (unnest), as pgqueuer
    enqueues, rather than a parameter per value. Skips request ids already used; returns the
    ids inserted, each with `held` (`holds_apply`, which also announces the jobs)."""
    new = func.unnest(
        _array("new_ids", Text), _array("new_campaign_ids", Text), _array("new_job_types", Text), _array("new_payloads", Text),
        _array("new_max_attempts", Integer), _array("new_run_afters", postgresql.TIMESTAMP(timezone=True)),
        _array("new_request_ids", Text), _array("new_priorities", Integer),
    ).table_valued("id", "campaign_id", "job_type", "payload", "max_attempts", "run_after", "request_id", "priority").render_derived(name="new")
    now = bindparam("now", type_=UtcDateTime)
    rows = select(
        new.c.id, new.c.campaign_id, new.c.job_type, cast(new.c.payload, postgresql.JSONB), status_literal(JobStatus.PENDING),
        literal(0), new.c.max_attempts, literal(0), new.c.run_after, literal(""), new.c.request_id, now, now, new.c.priority, literal(0),
    )
    columns = [
        "id", "campaign_id", "job_type", "payload", "status", "attempts", "max_attempts", "provider_failures", "run_after",
        "last_error", "request_id", "created_at", "updated_at", "priority", "lease_expirations",
    ]
    inserted = (
        postgresql.insert(jobs).from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["request_id"], index_where=jobs.c.request_id.is_not(None))
        .returning(jobs.c.id)
        .cte("new_jobs")
    )
    links = func.unnest(_array("link_job_ids", Text), _array("link_dependencies", Text)).table_valued("job_id", "dependency").render_derived(name="link")
    dependencies = (
        postgresql.insert(job_dependencies)
        .from_select(["job_id", "dependency"], select(links.c.job_id, links.c.dependency).where(links.c.job_id.in_(select(inserted.c.id))))
        .cte("new_dependencies")
    )
    held = holds_apply(True).subquery("held")
    return select(inserted.c.id, held.c.held).select_from(inserted.join(held, true())).add_cte(dependencies)


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


@cache
def hold_keys_of() -> Any:
    """The hold keys (`store.hold_key`) of the jobs :ids: their dependencies and campaign.
    PostgreSQL only (the advisory locks it is for): :ids is one array, however many a redrive
    names (an expanding IN would hit the protocol's 32,767 parameters)."""
    of_dependencies = select((literal("dependency:", Text) + job_dependencies.c.dependency).label("key")).where(
        in_list(job_dependencies.c.job_id, "ids", True)
    )
    of_campaigns = select((literal("campaign:", Text) + jobs.c.campaign_id).label("key")).where(
        in_list(jobs.c.id, "ids", True), jobs.c.campaign_id.is_not(None)
    )
    return union(of_dependencies, of_campaigns)


def _oldest_finished(postgres: bool) -> Select[Any]:
    """The ids of up to :limit completed or cancelled jobs last changed before :before, oldest
    first. The statuses are constants, so ix_jobs_finished's predicate matches in any plan. On
    SQLite the id breaks ties: `delete_finished_sqlite` runs this twice and must get the same
    jobs both times."""
    finished = jobs.alias("finished")
    oldest = (
        select(finished.c.id)
        .where(finished.c.status.in_(statuses_literal((JobStatus.COMPLETED, JobStatus.CANCELLED))))
        .where(finished.c.updated_at < bindparam("before"))
        .limit(bindparam("limit"))
    )
    if not postgres:
        return oldest.order_by(finished.c.updated_at, finished.c.id)
    return oldest.order_by(finished.c.updated_at).with_for_update(skip_locked=True, of=finished)


@cache
def delete_finished_postgres() -> Any:
    """Deletes the jobs of `_oldest_finished` and their dependency rows in one statement (a
    data-modifying CTE: no foreign key cascades them, see migration 0009) and answers how many
    jobs went. A finished job has no holds (they go when it finishes). The dependency rows are
    found as the jobs are, `= ANY(ARRAY(gone))`: one scan of pk_job_dependencies (job_id leads
    it) for all the ids, in custom and generic plans alike (300,000 jobs, a batch of 1,000:
    3.9 ms for the statement, where the cascade made the bare DELETE 5.9 ms)."""
    gone = delete(jobs).where(_among(_oldest_finished(True), True)).returning(jobs.c.id).cte("gone")
    of_gone = job_dependencies.c.job_id == any_(func.array(select(gone.c.id).scalar_subquery()))
    dependencies_gone = delete(job_dependencies).where(of_gone).cte("dependencies_gone")
    return select(func.count()).select_from(gone).add_cte(dependencies_gone)


@cache
def delete_finished_sqlite() -> tuple[Any, Any]:
    """SQLite: the dependency rows of the jobs of `_oldest_finished`, then those jobs (two
    statements in one transaction, whose first write keeps other writers out until it ends)."""
    oldest = _oldest_finished(False)
    return delete(job_dependencies).where(job_dependencies.c.job_id.in_(oldest)), delete(jobs).where(_among(oldest, False))


def _redrivable(postgres: bool, statuses: tuple[JobStatus, ...], by_ids: bool, by_type: bool, by_campaign: bool) -> list[Any]:
    """Jobs of `statuses` (failed, cancelled or both: a statement for each) among :ids, of
    :b_job_type and of :b_campaign_id (each when asked for). The statuses are constants, so a
    generic plan walks ix_jobs_status_created for them (as a parameter, it seq-scanned all jobs)."""
    conditions = [jobs.c.status.in_(statuses_literal(statuses))]
    if by_ids:
        conditions.append(in_list(jobs.c.id, "ids", postgres))
    if by_type:
        conditions.append(jobs.c.job_type == bindparam("b_job_type"))
    if by_campaign:
        conditions.append(jobs.c.campaign_id == bindparam("b_campaign_id"))
    return conditions


@cache
def redrivable(postgres: bool, statuses: tuple[JobStatus, ...], by_ids: bool, by_type: bool, by_campaign: bool) -> Any:
    """The ids of the jobs `redrive` would take (`_redrivable`)."""
    return select(jobs.c.id).where(*_redrivable(postgres, statuses, by_ids, by_type, by_campaign))


@cache
def redrive(postgres: bool, statuses: tuple[JobStatus, ...], by_ids: bool, by_type: bool, by_campaign: bool) -> Any:
    """The jobs of `_redrivable` back to pending, attempts and counters from zero; returns
    their ids."""
    return (
        update(jobs)
        .where(*_redrivable(postgres, statuses, by_ids, by_type, by_campaign))
        .values(
            status=status_literal(JobStatus.PENDING), attempts=0, provider_failures=0, lease_expirations=0, result=None,
            run_after=bindparam("now"), updated_at=bindparam("now"),
        )
        .returning(jobs.c.id)
    )


@cache
def counts_by_dependency() -> Any:
    """Jobs per dependency and status, where the status NULL stands for completed: each
    dependency row is joined only to a job not completed (the statuses are constants, so
    ix_jobs_status_created and ix_jobs_lease find those jobs), and a row whose job is not among
    them is a completed job's (a dependency row always has its job). So the completed jobs, most
    of a table that keeps them for the retention age, are counted from job_dependencies alone,
    without reading them in jobs."""
    not_completed = statuses_literal(status for status in JobStatus if status is not JobStatus.COMPLETED)
    joined = job_dependencies.outerjoin(jobs, and_(jobs.c.id == job_dependencies.c.job_id, jobs.c.status.in_(not_completed)))
    return (
        select(job_dependencies.c.dependency, jobs.c.status, func.count())
        .select_from(joined)
        .group_by(job_dependencies.c.dependency, jobs.c.status)
    )


@cache
def lock_hold_keys(exclusive: bool) -> Any:
    """Transaction-level advisory locks on the hold keys :keys (JobTx.lock_hold_keys), in
    class :class_id, each key hashed to the lock's second number."""
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    return text(f"SELECT {lock}(:class_id, hashtext(k)) FROM unnest(CAST(:keys AS text[])) AS k")


# -- the outcome outbox (job_svc.forwarder) -----------------------------------------------------

OUTBOX_COLUMNS = (
    breaker_outbox.c.id, breaker_outbox.c.dependency, breaker_outbox.c.success, breaker_outbox.c.duration_s,
    breaker_outbox.c.request_id,
)


@cache
def claim_outbox_batch(postgres: bool) -> Any:
    """The batch to send next, leased until :lease_until, in one statement (no transaction
    around it): the oldest batch formed before whose lease is free (a resend: same id, same
    rows), else a new one, :new_batch_id, of the oldest :limit rows in no batch. SKIP LOCKED on
    PostgreSQL: replicas take different rows. Returns the rows, each with its batch id."""
    outbox = breaker_outbox.c
    formed = (
        select(outbox.batch_id)
        .where(outbox.batch_id.is_not(None), outbox.set_aside_at.is_(None))
        .where(or_(outbox.lease_until.is_(None), outbox.lease_until < bindparam("now")))
        .order_by(outbox.id)
        .limit(1)
    )
    formed_batch = _skipping_locked(formed, postgres).cte("formed")
    fresh = (
        select(outbox.id)
        .where(outbox.batch_id.is_(None), outbox.set_aside_at.is_(None), ~exists(select(formed_batch.c.batch_id)))
        .order_by(outbox.id)
        .limit(bindparam("limit"))
    )
    fresh_rows = _skipping_locked(fresh, postgres).cte("fresh")
    formed_id = select(formed_batch.c.batch_id).scalar_subquery()
    return (
        update(breaker_outbox)
        .where(outbox.set_aside_at.is_(None), or_(outbox.batch_id == formed_id, outbox.id.in_(select(fresh_rows.c.id))))
        .values(batch_id=func.coalesce(formed_id, bindparam("new_batch_id")), lease_until=bindparam("lease_until"))
        .returning(outbox.batch_id, *OUTBOX_COLUMNS)
    )


def _skipping_locked(query: Select[Any], postgres: bool) -> Select[Any]:
    return query.with_for_update(skip_locked=True) if postgres else query


def in_outbox_batch() -> ColumnElement[bool]:
    """The rows of batch :b_batch_id still to be sent (not those of it set aside). The parameter
    is not named `batch_id`: an UPDATE setting that column keeps the name for itself."""
    return and_(breaker_outbox.c.batch_id == bindparam("b_batch_id"), breaker_outbox.c.set_aside_at.is_(None))


@cache
def delete_outbox_batch() -> Any:
    """The rows of batch :b_batch_id still to be sent (breaker_svc counted them)."""
    return delete(breaker_outbox).where(in_outbox_batch())
