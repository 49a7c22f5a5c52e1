-- The SQLite store's reads for the capacity forecast (capacity_views.py), named as in sqlfile.py.
-- Payloads are read as text (SQLite's JSON functions refuse BLOBs), and only tracks' are read.

-- name: arrivals_total
-- On seen_messages_by_age (`+` keeps SQLite from scanning the destination's week by primary key).
SELECT count(*) FROM seen_messages WHERE seen_at >= :since AND +destination_id = :destination_id;

-- name: arrivals_sample
-- The newest arrivals (on seen_messages_by_age), their events found by messageId and receipt.
SELECT kind, name, count(*), sum(anonymous) FROM (
    SELECT e.kind,
        CASE WHEN e.kind = 'track' AND json_valid(CAST(e.payload AS TEXT))
            AND json_type(CAST(e.payload AS TEXT), '$.event') = 'text'
            THEN json_extract(CAST(e.payload AS TEXT), '$.event') END AS name,
        substr(e.ordering_key, 1, 12) = 'anonymousId:' AS anonymous
    FROM (
        SELECT destination_id, message_id, seen_at FROM seen_messages
        WHERE seen_at >= :since AND +destination_id = :destination_id
        ORDER BY seen_at DESC LIMIT :limit
    ) AS s
    JOIN events AS e ON e.message_id = s.message_id AND e.destination_id = s.destination_id
        AND e.received_at = s.seen_at
)
GROUP BY kind, name;

-- name: call_costs
-- A call shared by n of these events (a Person upsert of a run, a Company write) is 1/n each.
WITH finished AS (
    SELECT id, kind,
        CASE WHEN kind = 'track' AND json_valid(CAST(payload AS TEXT))
            AND json_type(CAST(payload AS TEXT), '$.event') = 'text'
            THEN json_extract(CAST(payload AS TEXT), '$.event') END AS name
    FROM events
    WHERE finished_at >= :since AND destination_id = :destination_id
    ORDER BY finished_at DESC LIMIT :limit
),
rode AS (
    SELECT a.event_id, a.call FROM event_attempts AS a JOIN finished AS f ON a.event_id = f.id
    WHERE a.call IS NOT NULL
),
riders AS (SELECT call, count(*) AS n FROM rode GROUP BY call),
spent AS (
    SELECT rode.event_id, sum(1.0 / riders.n) AS calls FROM rode JOIN riders USING (call)
    GROUP BY rode.event_id
)
SELECT f.kind, f.name, count(*), coalesce(sum(spent.calls), 0.0)
FROM finished AS f LEFT JOIN spent ON spent.event_id = f.id
GROUP BY f.kind, f.name;

-- name: arrival_histogram
SELECT CAST((seen_at - :since) / :bucket AS INTEGER) AS bucket, count(*) FROM seen_messages
WHERE seen_at >= :since AND +destination_id = :destination_id
GROUP BY bucket;

-- name: oldest_unfinished
-- Each person's oldest unfinished event is its head (events_claimable holds only heads).
SELECT min(received_at) FROM events WHERE head = 1 AND destination_id = :destination_id;

-- name: finished_histogram
SELECT CAST((finished_at - :since) / :bucket AS INTEGER) AS bucket, state, count(*)
FROM events
WHERE finished_at >= :since AND destination_id = :destination_id
GROUP BY bucket, state;

-- name: calls_history
SELECT window_start, calls FROM rate_windows
WHERE tenant_key = :tenant_key AND window_name = :window_name AND window_start >= :since AND calls > 0;
