-- Every SQL statement of the PostgreSQL store, one named block each ("-- name: x" up to the next).
-- postgres.py loads this file once; parameters are psycopg's %(name)s. Every store method runs in
-- one transaction (READ COMMITTED). A person's queue is changed only under that person's advisory
-- lock (lock_people), so enqueue, finish and replay agree on which event is the person's head.

-- name: migration_lock
SELECT pg_advisory_xact_lock(7461626173650001);

-- name: schema_version
SELECT version FROM schema_version;

-- name: lock_people
-- Two-key advisory locks (hash of destination, hash of person), taken in one order by everyone, so
-- two transactions locking several people cannot deadlock.
SELECT count(pg_advisory_xact_lock(d, o)) FROM (
    SELECT DISTINCT hashtext(dest) AS d, hashtext(person) AS o
    FROM unnest(%(destinations)s::text[], %(people)s::text[]) AS p(dest, person)
    ORDER BY 1, 2
) keys;

-- name: enqueue
-- New messageIds (or ones last seen before the dedupe window) become queued events, in batch
-- order; a duplicate changes nothing (a concurrent insert of the same id waits for the first).
WITH input AS (
    SELECT * FROM unnest(
        %(destinations)s::text[], %(message_ids)s::text[], %(people)s::text[], %(kinds)s::text[],
        %(payloads)s::bytea[], %(received)s::float8[], %(costs)s::text[]
    ) WITH ORDINALITY AS t(destination_id, message_id, ordering_key, kind, payload, received_at, cost, n)
),
fresh AS (
    INSERT INTO seen_messages AS s (destination_id, message_id, seen_at)
    SELECT destination_id, message_id, received_at FROM input
    ON CONFLICT (destination_id, message_id) DO UPDATE SET seen_at = excluded.seen_at
        WHERE s.seen_at <= excluded.seen_at - %(dedupe_window)s
    RETURNING destination_id, message_id
)
INSERT INTO events (
    destination_id, message_id, ordering_key, kind, payload, received_at, state, head, available_at,
    cost
)
SELECT i.destination_id, i.message_id, i.ordering_key, i.kind, i.payload, i.received_at, 'queued',
    false, i.received_at, i.cost
FROM input i JOIN fresh f USING (destination_id, message_id)
ORDER BY i.n
RETURNING message_id;

-- name: elect_heads
-- A person without a head gets one: its oldest unfinished event. (A person with a head keeps it,
-- even when a replayed event is older: the head may be in flight.)
UPDATE events SET head = true
WHERE id IN (
    SELECT min(e.id) FROM events e
    JOIN unnest(%(destinations)s::text[], %(people)s::text[]) AS p(dest, person)
        ON e.destination_id = p.dest AND e.ordering_key = p.person
    WHERE e.state IN ('queued', 'leased')
    GROUP BY e.destination_id, e.ordering_key
    HAVING NOT bool_or(e.head)
);

-- name: ready_heads
-- Ready heads: queued and due, or leased with the lease expired (available_at = lease expiry).
-- SKIP LOCKED: replicas claiming at once take different heads instead of waiting on each other.
SELECT id, destination_id, ordering_key, kind, cost, available_at FROM events
WHERE head AND available_at <= %(now)s
ORDER BY available_at, id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: ready_heads_costing
-- The ready heads of one cost (events_claimable_by_cost): read while a budget class is spent, for
-- each cost a claim can still pay, so the heads waiting for the spent class are not even read.
SELECT id, destination_id, ordering_key, kind, cost, available_at FROM events
WHERE head AND cost = %(cost)s AND available_at <= %(now)s
ORDER BY available_at, id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: runs_after_heads
-- Each head's person's unfinished events after it, to extend runs (the caller stops at the first
-- not yet due, and at the calls it may spend).
SELECT h.id, f.id, f.kind, f.cost, f.available_at
FROM unnest(%(heads)s::bigint[], %(destinations)s::text[], %(people)s::text[]) AS h(id, dest, person)
CROSS JOIN LATERAL (
    SELECT id, kind, cost, available_at FROM events
    WHERE destination_id = h.dest AND ordering_key = h.person AND state IN ('queued', 'leased')
        AND id > h.id
    ORDER BY id
    LIMIT %(limit)s
) f
ORDER BY h.id, f.id;

-- name: lease_events
-- Each event under its claim's token. The state test skips an event that a worker whose lease
-- had expired finished meanwhile (it is no longer queued or leased).
UPDATE events e
SET state = 'leased', available_at = %(lease_until)s, lease_owner = l.lease
FROM unnest(%(ids)s::bigint[], %(leases)s::text[]) AS l(id, lease)
WHERE e.id = l.id AND e.state IN ('queued', 'leased') AND e.available_at <= %(now)s
RETURNING e.id, e.destination_id, e.message_id, e.ordering_key, e.kind, e.payload, e.received_at,
    e.attempts, e.progress, e.replayed_at_attempt, e.cost;

-- name: renew_lease
UPDATE events SET available_at = %(lease_until)s
WHERE lease_owner = %(lease)s AND state = 'leased';

-- name: append_attempt
-- Appended to the history and counted: `attempts` is the store's one attempt counter.
WITH counted AS (
    UPDATE events SET attempts = attempts + 1 WHERE id = %(event_id)s RETURNING id
)
INSERT INTO event_attempts (event_id, at, outcome, status_code, error, response, request, call)
SELECT id, %(at)s, %(outcome)s, %(status_code)s, %(error)s, %(response)s, %(request)s, %(call)s
FROM counted;

-- name: lazy_commit
-- For moves that a server crash may undo without harm (a put-back, a renewed lease: the event stays
-- leased until its lease runs out, then is claimed again), the commit does not wait for the WAL
-- flush. A backlog put back for the budget then costs no disk flush per event.
SET LOCAL synchronous_commit = off;

-- name: retry_later
-- Stays its person's head, so the person's later events keep waiting behind it.
UPDATE events
SET state = 'queued', available_at = %(available_at)s, progress = %(progress)s, lease_owner = NULL
WHERE id = %(id)s AND state = 'leased' AND lease_owner = %(lease)s;

-- name: person_of
SELECT destination_id, ordering_key FROM events WHERE id = %(id)s;

-- name: finish_event
UPDATE events
SET state = %(state)s, head = false, available_at = NULL, lease_owner = NULL,
    finished_at = %(now)s, reason = %(reason)s
WHERE id = %(id)s AND state = 'leased' AND lease_owner = %(lease)s
RETURNING destination_id, ordering_key;

-- name: get_event
SELECT id, destination_id, message_id, ordering_key, kind, payload, received_at, state, attempts,
    progress, available_at, lease_owner, finished_at, reason, replayed_at_attempt
FROM events
WHERE id = %(id)s;

-- name: event_history
SELECT at, outcome, status_code, error, response, request, call
FROM event_attempts
WHERE event_id = %(event_id)s
ORDER BY id;

-- name: list_dead_letters
-- attempts: the one counter, the length of the history (which survives replay).
SELECT id, destination_id, message_id, ordering_key, kind, received_at, attempts, reason, finished_at
FROM events
WHERE state = 'dead' AND (%(destination_id)s::text IS NULL OR destination_id = %(destination_id)s)
ORDER BY id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: dead_letter_people
-- The people of the events to replay (NULL ids: every dead letter), to lock before the replay.
-- Rejected events are replayed too, but only when named by id.
SELECT DISTINCT destination_id, ordering_key FROM events
WHERE (state = 'dead' OR (state = 'rejected' AND %(ids)s::bigint[] IS NOT NULL))
    AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
    AND (%(destination_id)s::text IS NULL OR destination_id = %(destination_id)s);

-- name: requeue_dead_letters
-- available_at = received_at: ready at once, and claimed in their original order.
UPDATE events
SET state = 'queued', head = false, available_at = received_at, lease_owner = NULL,
    replayed_at_attempt = attempts, progress = NULL, finished_at = NULL, reason = NULL
WHERE (state = 'dead' OR (state = 'rejected' AND %(ids)s::bigint[] IS NOT NULL))
    AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
    AND (%(destination_id)s::text IS NULL OR destination_id = %(destination_id)s)
RETURNING destination_id, ordering_key;

-- name: reset_heads
-- After a replay each person's oldest unfinished event becomes its head, unless one of its events
-- is leased: that one is in flight and stays the head until it finishes.
UPDATE events e
SET head = (e.id = first.id)
FROM (
    SELECT destination_id, ordering_key, min(id) AS id FROM events
    JOIN unnest(%(destinations)s::text[], %(people)s::text[]) AS p(dest, person)
        ON destination_id = p.dest AND ordering_key = p.person
    WHERE state IN ('queued', 'leased')
    GROUP BY destination_id, ordering_key
    HAVING NOT bool_or(state = 'leased')
) first
WHERE e.destination_id = first.destination_id AND e.ordering_key = first.ordering_key
    AND e.state IN ('queued', 'leased') AND e.head <> (e.id = first.id);

-- name: purge_dead_letters
WITH gone AS (
    DELETE FROM events
    WHERE state = 'dead'
        AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
        AND (%(destination_id)s::text IS NULL OR destination_id = %(destination_id)s)
    RETURNING id
),
history AS (
    DELETE FROM event_attempts WHERE event_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone;

-- name: state_counts
SELECT state, sum(n)::bigint FROM state_counts GROUP BY state;

-- name: take_budget
-- `calls` counted in every window, or (when a window lacks room for them) the caller rolls back.
-- Windows are upserted in the caller's order, so concurrent takers lock them in the same order.
INSERT INTO rate_windows AS w (tenant_key, window_name, window_start, calls, cap)
SELECT %(tenant_key)s, name, start, %(calls)s, cap
FROM unnest(%(names)s::text[], %(starts)s::float8[], %(caps)s::int[]) WITH ORDINALITY AS t(name, start, cap, n)
ORDER BY n
ON CONFLICT (tenant_key, window_name, window_start) DO UPDATE
    SET calls = w.calls + excluded.calls, cap = excluded.cap
    WHERE w.calls + excluded.calls <= excluded.cap
RETURNING window_name, window_start;

-- name: prune_events
-- Finished events past the dedupe window, a chunk at a time, with their history.
WITH gone AS (
    DELETE FROM events
    WHERE id IN (
        SELECT id FROM events
        WHERE state IN ('delivered', 'unchanged', 'counted', 'filtered', 'rejected')
            AND received_at < %(before)s
        LIMIT %(limit)s
    )
    RETURNING id
),
history AS (
    DELETE FROM event_attempts WHERE event_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone;

-- name: prune_seen_messages
DELETE FROM seen_messages
WHERE (destination_id, message_id) IN (
    SELECT destination_id, message_id FROM seen_messages WHERE seen_at < %(before)s LIMIT %(limit)s
);

-- name: prune_rate_windows
DELETE FROM rate_windows WHERE window_start < %(before)s;

-- name: prune_delivered_state
DELETE FROM delivered_state WHERE delivered_at < %(before)s;

-- name: prune_company_gsids
-- A Gsid learnt before %(before)s is forgotten; the company's next group event searches for it once.
-- (Space: the deleted rows' space is reused by autovacuum; the database gives none back to the OS.)
DELETE FROM company_gsids WHERE learnt_at < %(before)s;

-- name: drop_request_bodies
-- An event delivered (or unchanged, filtered) keeps its attempts' requests without their bodies.
UPDATE event_attempts SET request = request - 'body'
WHERE event_id = %(event_id)s AND request ? 'body';

-- name: fold_state_counts
-- The shards of each (destination, state) summed into shard 0.
WITH folded AS (
    DELETE FROM state_counts WHERE shard <> 0 RETURNING destination_id, state, n
)
INSERT INTO state_counts (destination_id, state, shard, n)
SELECT destination_id, state, 0, sum(n) FROM folded GROUP BY destination_id, state
ON CONFLICT (destination_id, state, shard) DO UPDATE SET n = state_counts.n + excluded.n;

-- name: company_gsids
SELECT name, gsid FROM company_gsids WHERE scope = %(scope)s AND name = ANY(%(names)s::text[]);

-- name: remember_gsids
INSERT INTO company_gsids AS g (scope, name, gsid, learnt_at)
SELECT %(scope)s, name, gsid, %(now)s FROM unnest(%(names)s::text[], %(gsids)s::text[]) AS t(name, gsid)
ON CONFLICT (scope, name) DO UPDATE SET gsid = excluded.gsid, learnt_at = excluded.learnt_at;

-- name: forget_gsids
DELETE FROM company_gsids WHERE scope = %(scope)s AND name = ANY(%(names)s::text[]);

-- name: last_companies
SELECT person, gsid FROM last_companies
WHERE destination_id = %(destination_id)s AND person = ANY(%(persons)s::text[]);

-- name: remember_last_companies
-- An association made by a later event of the person's is kept (a lapsed lease writes late).
INSERT INTO last_companies (destination_id, person, gsid, associated_at, event_id)
SELECT %(destination_id)s, person, gsid, %(now)s, event_id
FROM unnest(%(persons)s::text[], %(gsids)s::text[], %(event_ids)s::bigint[]) AS t(person, gsid, event_id)
ON CONFLICT (destination_id, person) DO UPDATE
    SET gsid = excluded.gsid, associated_at = excluded.associated_at, event_id = excluded.event_id
    WHERE excluded.event_id >= last_companies.event_id;

-- name: prune_last_companies
DELETE FROM last_companies WHERE associated_at < %(before)s;

-- name: delivered_states
SELECT key, state FROM delivered_state
WHERE scope = %(scope)s AND kind = %(kind)s AND key = ANY(%(keys)s::text[])
    AND delivered_at >= %(since)s;

-- name: remember_states
INSERT INTO delivered_state AS d (scope, kind, key, state, delivered_at)
SELECT %(scope)s, %(kind)s, key, state, %(now)s
FROM unnest(%(keys)s::text[], %(states)s::jsonb[]) AS t(key, state)
ON CONFLICT (scope, kind, key) DO UPDATE
    SET state = excluded.state, delivered_at = excluded.delivered_at;

-- name: forget_states
DELETE FROM delivered_state
WHERE scope = %(scope)s AND kind = %(kind)s AND key = ANY(%(keys)s::text[]);

-- name: hold
-- Session-level, one bigint key (the hash of holds.lock_text): a key space apart from the queue's
-- two-key transaction locks (lock_people).
SELECT pg_advisory_lock(hashtextextended(%(key)s, 0));

-- name: release_holds
SELECT pg_advisory_unlock_all();

-- name: events_by_message
SELECT id FROM events
WHERE message_id = %(message_id)s
    AND (%(destination_id)s::text IS NULL OR destination_id = %(destination_id)s)
ORDER BY id;

-- name: list_events
-- attempts: the one counter, the length of the history (which survives replay). The person's
-- userId and anonymousId, and the user filter (NULL: anyone), are read from the payload: the
-- userId or anonymousId exactly, or an email of the person (a group's traits.email is the
-- company's) ignoring case (`email` is `user` lower-cased).
SELECT id, destination_id, message_id, kind, state, received_at, finished_at, attempts, reason,
    nullif(convert_from(payload, 'UTF8')::jsonb ->> 'userId', ''),
    nullif(convert_from(payload, 'UTF8')::jsonb ->> 'anonymousId', '')
FROM events
WHERE (%(destination_id)s::text IS NULL OR destination_id = %(destination_id)s)
    AND (%(state)s::text IS NULL OR state = %(state)s)
    AND (%(user)s::text IS NULL OR CASE
        -- the needle (the user as JSON writes it, lower-cased) first: a cheap test every match
        -- passes; only then is the payload read as JSON
        WHEN strpos(lower(convert_from(payload, 'UTF8')), %(needle)s::text) = 0 THEN false
        ELSE convert_from(payload, 'UTF8')::jsonb ->> 'userId' = %(user)s
            OR convert_from(payload, 'UTF8')::jsonb ->> 'anonymousId' = %(user)s
            OR lower(convert_from(payload, 'UTF8')::jsonb #>> '{context,traits,email}') = %(email)s
            OR (kind <> 'group'
                AND lower(convert_from(payload, 'UTF8')::jsonb #>> '{traits,email}') = %(email)s)
    END)
ORDER BY id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: latest_finished
-- A destination's events that finished in a state since a time, newest first (the status page's
-- latest rejected and filtered): a walk of the finished_at index over that time, not the table.
SELECT id, destination_id, message_id, kind, state, received_at, finished_at, attempts, reason,
    nullif(convert_from(payload, 'UTF8')::jsonb ->> 'userId', ''),
    nullif(convert_from(payload, 'UTF8')::jsonb ->> 'anonymousId', '')
FROM events
WHERE finished_at >= %(since)s AND state = %(state)s AND destination_id = %(destination_id)s
ORDER BY finished_at DESC, id DESC
LIMIT %(limit)s;

-- name: person_head
SELECT id, destination_id, message_id, kind, state, received_at, finished_at, attempts, reason
FROM events
WHERE destination_id = %(destination_id)s AND ordering_key = %(ordering_key)s
    AND state IN ('queued', 'leased') AND head;

-- name: retry_now
-- Queued events waiting for a later time (a backoff, the budget's next window) become due now.
UPDATE events SET available_at = %(now)s
WHERE state = 'queued' AND available_at > %(now)s
    AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
    AND (%(destination_id)s::text IS NULL OR destination_id = %(destination_id)s);

-- name: counts_by_destination
SELECT destination_id, state, sum(n)::bigint FROM state_counts
GROUP BY destination_id, state
HAVING sum(n) <> 0;

-- name: finished_counts
SELECT destination_id, state, count(*) FROM events
WHERE finished_at IS NOT NULL AND finished_at >= %(since)s
GROUP BY destination_id, state;

-- name: recent_attempts
-- Only the newest `scan` attempts are looked at: an idle destination costs a bounded walk.
SELECT e.id, e.destination_id, e.message_id, e.kind,
    a.at, a.outcome, a.status_code, a.error, a.response, a.request, a.call, e.state
FROM event_attempts a JOIN events e ON e.id = a.event_id
WHERE a.id > (SELECT coalesce(max(id), 0) FROM event_attempts) - %(scan)s
    AND (%(destination_id)s::text IS NULL OR e.destination_id = %(destination_id)s)
    AND (NOT %(failed)s OR a.outcome IN ('throttled', 'retryable', 'aborted'))
ORDER BY a.id DESC
LIMIT %(limit)s;

-- name: budget_used
SELECT w.name, coalesce(r.calls, 0)
FROM unnest(%(names)s::text[], %(starts)s::float8[]) AS w(name, start)
LEFT JOIN rate_windows r
    ON r.tenant_key = %(tenant_key)s AND r.window_name = w.name AND r.window_start = w.start;
