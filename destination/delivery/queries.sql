-- Every SQL statement of the SQLite store, one named block each ("-- name: x" up to the next).
-- sqlite.py loads this file once; parameters are named (:param). Transaction control (BEGIN
-- IMMEDIATE / COMMIT / ROLLBACK) belongs to sqlite_writer.py, which runs every job in one.

-- name: configure_connection
-- synchronous = FULL: each commit is fsynced, so a stored event survives power loss, not only a
-- killed process (WAL + NORMAL would). Group commit makes that one fsync per batch of requests.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA busy_timeout = 10000;   -- other processes on the same file: wait for their write to end
-- 8 MB of pages per connection, the service's largest single holding (DESIGN §8, RSS ≤ 200 MB):
-- what a claim or an insert walks again (interior pages, each person's queue, the newest rows)
-- fits; the random-keyed messageId indexes outgrow any cache at 1M rows, and a page missed here
-- is read back from the OS's file cache, not the disk.
PRAGMA cache_size = -8000;
-- Temporary data stays in files (SQLite's default): a sort larger than the cache (the status page
-- groups every event by state: about 30 MB with 1,000,000 queued) goes to a temporary file rather
-- than into the service's memory; smaller ones never leave memory.
PRAGMA temp_store = FILE;
-- A checkpoint that empties the write-ahead log also cuts its file back to this size, so the log
-- does not keep (and later refill) the space of its largest burst.
PRAGMA journal_size_limit = 16777216;

-- name: remember_message
-- Changes one row when the messageId is new for its destination, or was last seen before the
-- dedupe window (then it counts as new again); changes nothing for a duplicate.
INSERT INTO seen_messages (destination_id, message_id, seen_at)
VALUES (:destination_id, :message_id, :received_at)
ON CONFLICT (destination_id, message_id) DO UPDATE SET seen_at = excluded.seen_at
    WHERE seen_messages.seen_at <= excluded.seen_at - :dedupe_window;

-- name: insert_event
-- The new event is its person's head when the person has nothing unfinished.
INSERT INTO events (
    destination_id, message_id, ordering_key, kind, payload, received_at, state, head, available_at,
    cost
)
VALUES (
    :destination_id, :message_id, :ordering_key, :kind, :payload, :received_at, 'queued',
    NOT EXISTS (
        SELECT 1 FROM events
        WHERE destination_id = :destination_id AND ordering_key = :ordering_key
            AND state IN ('queued', 'leased')
    ),
    :received_at, :cost
);

-- name: ready_heads
-- Ready heads: queued and due, or leased with the lease expired (available_at = lease expiry).
SELECT id, destination_id, ordering_key, kind, cost, available_at FROM events
WHERE head = 1 AND available_at <= :now
ORDER BY available_at, id
LIMIT :limit;

-- name: ready_heads_costing
-- The ready heads of one cost (events_claimable_by_cost): read while a budget class is spent, for
-- each cost a claim can still pay, so the heads waiting for the spent class are not even read.
SELECT id, destination_id, ordering_key, kind, cost, available_at FROM events
WHERE head = 1 AND cost = :cost AND available_at <= :now
ORDER BY available_at, id
LIMIT :limit;

-- name: run_after_head
-- The person's unfinished events after the head, to extend a run (the caller stops at the first
-- not yet due, and at the calls it may spend).
SELECT id, kind, cost, available_at FROM events
WHERE destination_id = :destination_id AND ordering_key = :ordering_key
    AND state IN ('queued', 'leased') AND id > :head_id
ORDER BY id
LIMIT :limit;

-- name: lease_event
UPDATE events
SET state = 'leased', available_at = :lease_until, lease_owner = :lease
WHERE id = :id
RETURNING id, destination_id, message_id, ordering_key, kind, payload, received_at, attempts,
    progress, replayed_at_attempt, cost;

-- name: renew_lease
UPDATE events SET available_at = :lease_until
WHERE lease_owner = :lease AND state = 'leased';

-- name: append_attempt
INSERT INTO event_attempts (event_id, at, outcome, status_code, error, response, request, call)
SELECT :event_id, :at, :outcome, :status_code, :error, :response, :request, :call
WHERE EXISTS (SELECT 1 FROM events WHERE id = :event_id);

-- name: count_attempt
UPDATE events SET attempts = attempts + 1 WHERE id = :event_id;

-- name: retry_later
-- Stays its person's head, so the person's later events keep waiting behind it.
UPDATE events
SET state = 'queued', available_at = :available_at, progress = :progress, lease_owner = NULL
WHERE id = :id AND state = 'leased' AND lease_owner = :lease;

-- name: finish_event
UPDATE events
SET state = :state, head = 0, available_at = NULL, lease_owner = NULL, finished_at = :now,
    reason = :reason
WHERE id = :id AND state = 'leased' AND lease_owner = :lease
RETURNING destination_id, ordering_key;

-- name: promote_next_head
UPDATE events SET head = 1
WHERE id = (
    SELECT id FROM events
    WHERE destination_id = :destination_id AND ordering_key = :ordering_key
        AND state IN ('queued', 'leased')
    ORDER BY id
    LIMIT 1
);

-- name: get_event
SELECT id, destination_id, message_id, ordering_key, kind, payload, received_at, state, attempts,
    progress, available_at, lease_owner, finished_at, reason, replayed_at_attempt
FROM events
WHERE id = :id;

-- name: event_history
SELECT at, outcome, status_code, error, response, request, call
FROM event_attempts
WHERE event_id = :event_id
ORDER BY id;

-- name: list_dead_letters
-- attempts: the one counter, the length of the history (which survives replay).
SELECT id, destination_id, message_id, ordering_key, kind, received_at, attempts, reason, finished_at
FROM events
WHERE state = 'dead' AND (:destination_id IS NULL OR destination_id = :destination_id)
ORDER BY id
LIMIT :limit OFFSET :offset;

-- name: select_dead_letters
-- :ids is a JSON array of ids, or NULL for every dead letter. Rejected events are replayed only
-- when named by id (:with_rejected): replaying every rejected event at once is never what is meant.
SELECT id FROM events
WHERE (state = 'dead' OR (state = 'rejected' AND :with_rejected AND :ids IS NOT NULL))
    AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
    AND (:destination_id IS NULL OR destination_id = :destination_id)
ORDER BY id;

-- name: requeue_dead_letters
-- available_at = received_at: ready at once, and claimed in their original order.
UPDATE events
SET state = 'queued', head = 0, available_at = received_at, lease_owner = NULL,
    replayed_at_attempt = attempts, progress = NULL, finished_at = NULL, reason = NULL
WHERE state IN ('dead', 'rejected') AND id IN (SELECT value FROM json_each(:ids))
RETURNING destination_id, ordering_key;

-- name: reset_person_head
-- After a replay the person's oldest unfinished event becomes its head, unless one of its events
-- is leased: that one is in flight and stays the head until it finishes.
UPDATE events
SET head = (id = (
    SELECT min(id) FROM events
    WHERE destination_id = :destination_id AND ordering_key = :ordering_key
        AND state IN ('queued', 'leased')
))
WHERE destination_id = :destination_id AND ordering_key = :ordering_key
    AND state IN ('queued', 'leased')
    AND NOT EXISTS (
        SELECT 1 FROM events
        WHERE destination_id = :destination_id AND ordering_key = :ordering_key
            AND state IN ('queued', 'leased') AND state = 'leased'
    );

-- name: delete_attempts_of
DELETE FROM event_attempts WHERE event_id IN (SELECT value FROM json_each(:ids));

-- name: delete_events
DELETE FROM events WHERE id IN (SELECT value FROM json_each(:ids));

-- name: events_by_message
SELECT id FROM events
WHERE message_id = :message_id AND (:destination_id IS NULL OR destination_id = :destination_id)
ORDER BY id;

-- name: list_events
-- The person's userId and anonymousId, and the :user filter (NULL: anyone), are read from the
-- payload: :user is the userId or anonymousId exactly, or an email of the person (a group's
-- traits.email is the company's) ignoring case (:email is :user lower-cased).
SELECT id, destination_id, message_id, kind, state, received_at, finished_at, attempts, reason,
    CASE WHEN json_valid(CAST(payload AS TEXT))
        THEN nullif(CAST(json_extract(CAST(payload AS TEXT), '$.userId') AS TEXT), '') END,
    CASE WHEN json_valid(CAST(payload AS TEXT))
        THEN nullif(CAST(json_extract(CAST(payload AS TEXT), '$.anonymousId') AS TEXT), '') END
FROM events
WHERE (:destination_id IS NULL OR destination_id = :destination_id)
    AND (:state IS NULL OR state = :state)
    AND (:user IS NULL OR CASE
        -- :needle (the user as JSON writes it, lower-cased) first: a cheap test every match passes
        WHEN instr(lower(CAST(payload AS TEXT)), :needle) = 0 OR NOT json_valid(CAST(payload AS TEXT))
            THEN 0
        ELSE CAST(json_extract(CAST(payload AS TEXT), '$.userId') AS TEXT) = :user
            OR CAST(json_extract(CAST(payload AS TEXT), '$.anonymousId') AS TEXT) = :user
            OR lower(json_extract(CAST(payload AS TEXT), '$.context.traits.email')) = :email
            OR (kind <> 'group' AND lower(json_extract(CAST(payload AS TEXT), '$.traits.email')) = :email)
    END)
ORDER BY id
LIMIT :limit OFFSET :offset;

-- name: latest_finished
-- A destination's events that finished in a state since a time, newest first (the status page's
-- latest rejected and filtered): a walk of the finished_at index over that time, not the table.
SELECT id, destination_id, message_id, kind, state, received_at, finished_at, attempts, reason,
    CASE WHEN json_valid(CAST(payload AS TEXT))
        THEN nullif(CAST(json_extract(CAST(payload AS TEXT), '$.userId') AS TEXT), '') END,
    CASE WHEN json_valid(CAST(payload AS TEXT))
        THEN nullif(CAST(json_extract(CAST(payload AS TEXT), '$.anonymousId') AS TEXT), '') END
FROM events
WHERE finished_at >= :since AND state = :state AND destination_id = :destination_id
ORDER BY finished_at DESC, id DESC
LIMIT :limit;

-- name: person_head
SELECT id, destination_id, message_id, kind, state, received_at, finished_at, attempts, reason
FROM events
WHERE destination_id = :destination_id AND ordering_key = :ordering_key
    AND state IN ('queued', 'leased') AND head = 1;

-- name: retry_now
-- Queued events waiting for a later time (a backoff, the budget's next window) become due now.
-- :ids is a JSON array of ids, or NULL for every one.
UPDATE events SET available_at = :now
WHERE state = 'queued' AND available_at > :now
    AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
    AND (:destination_id IS NULL OR destination_id = :destination_id);

-- name: counts_by_destination
SELECT destination_id, state, count(*) FROM events GROUP BY destination_id, state;

-- name: finished_counts
SELECT destination_id, state, count(*) FROM events
WHERE finished_at IS NOT NULL AND finished_at >= :since
GROUP BY destination_id, state;

-- name: recent_attempts
-- :failed is 1 for failures only (throttled, retryable, aborted). Only the newest :scan attempts
-- are looked at, so an idle destination costs a bounded walk, not the whole history.
SELECT e.id, e.destination_id, e.message_id, e.kind,
    a.at, a.outcome, a.status_code, a.error, a.response, a.request, a.call, e.state
FROM event_attempts a JOIN events e ON e.id = a.event_id
WHERE a.id > (SELECT coalesce(max(id), 0) FROM event_attempts) - :scan
    AND (:destination_id IS NULL OR e.destination_id = :destination_id)
    AND (:failed = 0 OR a.outcome IN ('throttled', 'retryable', 'aborted'))
ORDER BY a.id DESC
LIMIT :limit;

-- name: state_counts
SELECT state, n FROM state_counts;

-- name: window_calls
SELECT calls FROM rate_windows
WHERE tenant_key = :tenant_key AND window_name = :window_name AND window_start = :window_start;

-- name: count_call
INSERT INTO rate_windows (tenant_key, window_name, window_start, calls)
VALUES (:tenant_key, :window_name, :window_start, :calls)
ON CONFLICT (tenant_key, window_name, window_start) DO UPDATE SET calls = calls + :calls;

-- name: prunable_events
-- One partial index per branch; rejected and unchanged events go the same way as delivered ones.
SELECT id FROM events
WHERE state IN ('delivered', 'filtered') AND received_at < :before
UNION ALL
SELECT id FROM events
WHERE state = 'rejected' AND received_at < :before
UNION ALL
SELECT id FROM events
WHERE state = 'unchanged' AND received_at < :before
UNION ALL
SELECT id FROM events
WHERE state = 'counted' AND received_at < :before
LIMIT :limit;

-- name: prune_seen_messages
DELETE FROM seen_messages
WHERE (destination_id, message_id) IN (
    SELECT destination_id, message_id FROM seen_messages WHERE seen_at < :before LIMIT :limit
);

-- name: prune_rate_windows
DELETE FROM rate_windows WHERE window_start < :before;


-- name: company_gsid
SELECT gsid FROM company_gsids WHERE scope = :scope AND name = :name;

-- name: remember_gsid
INSERT INTO company_gsids (scope, name, gsid, learnt_at) VALUES (:scope, :name, :gsid, :now)
ON CONFLICT (scope, name) DO UPDATE SET gsid = excluded.gsid, learnt_at = excluded.learnt_at;

-- name: forget_gsid
DELETE FROM company_gsids WHERE scope = :scope AND name = :name;

-- name: last_company
SELECT gsid FROM last_companies WHERE destination_id = :destination_id AND person = :person;

-- name: remember_last_company
-- An association made by a later event of the person's is kept (a lapsed lease writes late).
INSERT INTO last_companies (destination_id, person, gsid, associated_at, event_id)
VALUES (:destination_id, :person, :gsid, :now, :event_id)
ON CONFLICT (destination_id, person) DO UPDATE
    SET gsid = excluded.gsid, associated_at = excluded.associated_at, event_id = excluded.event_id
    WHERE excluded.event_id >= last_companies.event_id;

-- name: prune_last_companies
DELETE FROM last_companies WHERE associated_at < :before;

-- name: delivered_state
SELECT state FROM delivered_state
WHERE scope = :scope AND kind = :kind AND key = :key AND delivered_at >= :since;

-- name: remember_state
INSERT INTO delivered_state (scope, kind, key, state, delivered_at)
VALUES (:scope, :kind, :key, :state, :now)
ON CONFLICT (scope, kind, key) DO UPDATE
    SET state = excluded.state, delivered_at = excluded.delivered_at;

-- name: forget_state
DELETE FROM delivered_state WHERE scope = :scope AND kind = :kind AND key = :key;

-- name: prune_delivered_state
DELETE FROM delivered_state WHERE delivered_at < :before;

-- name: prune_company_gsids
-- A Gsid learnt before :before is forgotten; the company's next group event searches for it once.
DELETE FROM company_gsids WHERE learnt_at < :before;

-- name: drop_request_bodies
-- An event delivered (or unchanged, filtered) keeps its attempts' requests without their bodies:
-- the event's payload is kept, and only a dead letter needs what exactly was sent.
UPDATE event_attempts
SET request = CAST(json_remove(CAST(request AS TEXT), '$.body') AS BLOB)
WHERE event_id = :event_id AND request IS NOT NULL;
