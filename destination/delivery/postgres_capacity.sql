-- The PostgreSQL store's reads for the capacity forecast (capacity_views.py), named as in
-- sqlfile.py. Only tracks' payloads are read (for their event name).

-- name: arrivals_total
SELECT count(*) FROM seen_messages
WHERE seen_at >= %(since)s AND destination_id = %(destination_id)s;

-- name: arrivals_sample
-- The newest arrivals (on seen_messages_by_age), their events found by messageId and receipt.
SELECT kind, CASE WHEN json_typeof(doc -> 'event') = 'string' THEN doc ->> 'event' END AS name,
    count(*), count(*) FILTER (WHERE anonymous)
FROM (
    SELECT e.kind,
        CASE WHEN e.kind = 'track'
            THEN replace(convert_from(e.payload, 'UTF8'), '\u0000', '\ufffd')::json END AS doc,
        starts_with(e.ordering_key, 'anonymousId:') AS anonymous
    FROM (
        SELECT destination_id, message_id, seen_at FROM seen_messages
        WHERE seen_at >= %(since)s AND destination_id = %(destination_id)s
        ORDER BY seen_at DESC LIMIT %(limit)s
    ) AS s
    JOIN events AS e ON e.message_id = s.message_id AND e.destination_id = s.destination_id
        AND e.received_at = s.seen_at
) AS arrived
GROUP BY 1, 2;

-- name: call_costs
-- A call shared by n of these events (a Person upsert of a run, a Company write) is 1/n each.
WITH newest AS (
    SELECT id, kind,
        CASE WHEN kind = 'track'
            THEN replace(convert_from(payload, 'UTF8'), '\u0000', '\ufffd')::json END AS doc
    FROM events
    WHERE finished_at >= %(since)s AND destination_id = %(destination_id)s
    ORDER BY finished_at DESC LIMIT %(limit)s
),
finished AS (
    SELECT id, kind, CASE WHEN json_typeof(doc -> 'event') = 'string' THEN doc ->> 'event' END AS name
    FROM newest
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
SELECT f.kind, f.name, count(*), coalesce(sum(spent.calls), 0.0)::float8
FROM finished AS f LEFT JOIN spent ON spent.event_id = f.id
GROUP BY f.kind, f.name;

-- name: arrival_histogram
SELECT floor((seen_at - %(since)s) / %(bucket)s)::bigint AS bucket, count(*) FROM seen_messages
WHERE seen_at >= %(since)s AND destination_id = %(destination_id)s
GROUP BY 1;

-- name: oldest_unfinished
-- Each person's oldest unfinished event is its head (events_claimable holds only heads).
SELECT min(received_at) FROM events WHERE head AND destination_id = %(destination_id)s;

-- name: finished_histogram
SELECT floor((finished_at - %(since)s) / %(bucket)s)::bigint AS bucket, state, count(*)
FROM events
WHERE finished_at >= %(since)s AND destination_id = %(destination_id)s
GROUP BY 1, 2;

-- name: calls_history
SELECT window_start, calls FROM rate_windows
WHERE tenant_key = %(tenant_key)s AND window_name = %(window_name)s AND window_start >= %(since)s
    AND calls > 0;
