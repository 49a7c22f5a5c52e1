-- The SQLite store's statements for usage counts (usage_sqlite.py; schema: sqlite_migrations.sql v7).

-- name: remember_counted
INSERT INTO usage_counted (destination_id, message_id, counted_at)
VALUES (:destination_id, :message_id, :now)
ON CONFLICT DO NOTHING;

-- name: add_one
INSERT INTO usage_rows (destination_id, company, day, metric, count)
VALUES (:destination_id, :company, :day, :metric, 1)
ON CONFLICT (destination_id, company, day, metric) DO UPDATE SET count = count + 1;

-- name: usage_due
SELECT company, day, metric, count, written, known, held, written_at FROM usage_rows
WHERE destination_id = :destination_id AND count <> written AND held = 0 AND company <> ''
ORDER BY day, company, metric
LIMIT :limit;

-- name: usage_row
SELECT company, day, metric, count, written, known, held, written_at FROM usage_rows
WHERE destination_id = :destination_id AND company = :company AND day = :day AND metric = :metric;

-- name: usage_of_day
SELECT company, day, metric, count, written, known, held, written_at FROM usage_rows
WHERE destination_id = :destination_id AND day = :day
ORDER BY metric, company;

-- name: usage_written
UPDATE usage_rows SET written = :count, known = 1, held = 0, written_at = :now
WHERE destination_id = :destination_id AND company = :company AND day = :day AND metric = :metric;

-- name: usage_found
UPDATE usage_rows SET known = 1
WHERE destination_id = :destination_id AND company = :company AND day = :day AND metric = :metric;

-- name: usage_held
UPDATE usage_rows SET held = :held
WHERE destination_id = :destination_id AND company = :company AND day = :day AND metric = :metric;

-- name: last_usage_write
SELECT max(written_at) FROM usage_rows WHERE destination_id = :destination_id;

-- name: prune_usage_counted
DELETE FROM usage_counted WHERE counted_at < :counted_before;

-- name: prune_usage_rows
DELETE FROM usage_rows WHERE day < :oldest_day;
