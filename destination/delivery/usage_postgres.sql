-- The PostgreSQL store's statements for usage counts (usage_postgres.py; schema:
-- postgres_migrations.sql v5).

-- name: count_usage
-- One statement, one transaction: the row gains one only when the messageId is new.
WITH counted AS (
    INSERT INTO usage_counted (destination_id, message_id, counted_at)
    VALUES (%(destination_id)s, %(message_id)s, %(now)s)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
INSERT INTO usage_rows (destination_id, company, day, metric, count)
SELECT %(destination_id)s, %(company)s, %(day)s, %(metric)s, 1 FROM counted
ON CONFLICT (destination_id, company, day, metric) DO UPDATE SET count = usage_rows.count + 1
RETURNING 1;

-- name: usage_due
SELECT company, day, metric, count, written, known, held, written_at FROM usage_rows
WHERE destination_id = %(destination_id)s AND count <> written AND NOT held AND company <> ''
ORDER BY day, company, metric
LIMIT %(limit)s;

-- name: usage_rows
SELECT r.company, r.day, r.metric, r.count, r.written, r.known, r.held, r.written_at
FROM usage_rows r
JOIN unnest(%(companies)s::text[], %(days)s::text[], %(metrics)s::text[]) AS k (company, day, metric)
    ON r.company = k.company AND r.day = k.day AND r.metric = k.metric
WHERE r.destination_id = %(destination_id)s;

-- name: usage_of_day
SELECT company, day, metric, count, written, known, held, written_at FROM usage_rows
WHERE destination_id = %(destination_id)s AND day = %(day)s
ORDER BY metric, company;

-- name: usage_written
UPDATE usage_rows r SET written = k.count, known = true, held = false, written_at = %(now)s
FROM unnest(%(companies)s::text[], %(days)s::text[], %(metrics)s::text[], %(counts)s::bigint[])
    AS k (company, day, metric, count)
WHERE r.destination_id = %(destination_id)s
    AND r.company = k.company AND r.day = k.day AND r.metric = k.metric;

-- name: usage_found
UPDATE usage_rows r SET known = true
FROM unnest(%(companies)s::text[], %(days)s::text[], %(metrics)s::text[]) AS k (company, day, metric)
WHERE r.destination_id = %(destination_id)s
    AND r.company = k.company AND r.day = k.day AND r.metric = k.metric;

-- name: usage_held
UPDATE usage_rows r SET held = %(held)s
FROM unnest(%(companies)s::text[], %(days)s::text[], %(metrics)s::text[]) AS k (company, day, metric)
WHERE r.destination_id = %(destination_id)s
    AND r.company = k.company AND r.day = k.day AND r.metric = k.metric;

-- name: last_usage_write
SELECT max(written_at) FROM usage_rows WHERE destination_id = %(destination_id)s;

-- name: prune_usage_counted
DELETE FROM usage_counted WHERE counted_at < %(counted_before)s;

-- name: prune_usage_rows
DELETE FROM usage_rows WHERE day < %(oldest_day)s;
