-- The PostgreSQL store's schema, step by step (migrations.py runs them under an advisory lock, in
-- one transaction; never edit a released step, add one). Tables live in the connection's
-- search_path, so one database can hold several stores (one schema each).

-- name: v1
-- Times are unix seconds (double precision), as every store method takes them.
CREATE TABLE events (
    -- Ids are never reused: they order a person's events and name dead letters.
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination_id text NOT NULL,
    message_id text NOT NULL,
    ordering_key text NOT NULL,
    kind text NOT NULL,
    payload bytea NOT NULL,
    received_at double precision NOT NULL,
    state text NOT NULL,                -- see store.py's EventState
    head boolean NOT NULL,              -- the oldest unfinished event of its person: the only claimable one
    available_at double precision,      -- queued: claimable from; leased: lease expiry; NULL once final
    lease_owner text,                   -- the lease token of the claim holding it
    attempts integer NOT NULL DEFAULT 0,  -- attempts recorded since (re)queueing
    progress jsonb,                     -- kept between tries of a resumable plan
    finished_at double precision,
    reason text                         -- why it was dead-lettered
);
-- Claim reads only heads (FOR UPDATE SKIP LOCKED), so it stays O(limit) behind any backlog.
CREATE INDEX events_claimable ON events (available_at, id) WHERE head;
CREATE INDEX events_unfinished_by_person
    ON events (destination_id, ordering_key, id) WHERE state IN ('queued', 'leased');
-- Admin views: events by state, by messageId; what finished lately.
CREATE INDEX events_by_state ON events (state, id);
CREATE INDEX events_by_message ON events (message_id);
CREATE INDEX events_finished ON events (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX events_by_lease ON events (lease_owner) WHERE state = 'leased';

CREATE TABLE event_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id bigint NOT NULL,
    at double precision NOT NULL,
    outcome text NOT NULL,
    status_code integer,
    error text,
    response jsonb,                     -- Gainsight's answer
    request jsonb,                      -- the request sent, secrets masked
    call text                           -- the merged call the event rode on
);
CREATE INDEX event_attempts_by_event ON event_attempts (event_id, id);

-- Dedupe memory, apart from events so that pruning an event keeps its messageId.
CREATE TABLE seen_messages (
    destination_id text NOT NULL,
    message_id text NOT NULL,
    seen_at double precision NOT NULL,
    PRIMARY KEY (destination_id, message_id)
);
CREATE INDEX seen_messages_by_age ON seen_messages (seen_at);

-- Calls per tenant and fixed window, shared by every replica. `cap` is the limit the last taker
-- applied: the upsert's WHERE compares against it (excluded.cap), so counting stays one statement.
CREATE TABLE rate_windows (
    tenant_key text NOT NULL,
    window_name text NOT NULL,
    window_start double precision NOT NULL,
    calls integer NOT NULL,
    cap integer NOT NULL,
    PRIMARY KEY (tenant_key, window_name, window_start)
);

-- The Gsid learnt for each company name, per tenant (scope = domain): shared by every replica.
CREATE TABLE company_gsids (
    scope text NOT NULL,
    name text NOT NULL,
    gsid text NOT NULL,
    learnt_at double precision NOT NULL,
    PRIMARY KEY (scope, name)
);

-- What was last delivered per person and company (GSD_UNCHANGED_TTL_SECONDS), shared likewise.
CREATE TABLE delivered_state (
    scope text NOT NULL,
    kind text NOT NULL,                 -- person | company
    key text NOT NULL,
    state jsonb NOT NULL,
    delivered_at double precision NOT NULL,
    PRIMARY KEY (scope, kind, key)
);
CREATE INDEX delivered_state_by_age ON delivered_state (delivered_at);

-- Events per destination and state, kept by statement triggers. Each connection adds its deltas
-- to rows of its own (shard = backend pid), so writers never wait on one another's counter row;
-- a count is the sum over shards, and pruning folds the shards together.
CREATE TABLE state_counts (
    destination_id text NOT NULL,
    state text NOT NULL,
    shard integer NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (destination_id, state, shard)
);

CREATE FUNCTION gsd_count_states() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO state_counts (destination_id, state, shard, n)
        SELECT destination_id, state, pg_backend_pid(), count(*) FROM new_rows
        GROUP BY destination_id, state
        ON CONFLICT (destination_id, state, shard) DO UPDATE SET n = state_counts.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO state_counts (destination_id, state, shard, n)
        SELECT destination_id, state, pg_backend_pid(), -count(*) FROM old_rows
        GROUP BY destination_id, state
        ON CONFLICT (destination_id, state, shard) DO UPDATE SET n = state_counts.n + excluded.n;
    ELSE
        INSERT INTO state_counts (destination_id, state, shard, n)
        SELECT destination_id, state, pg_backend_pid(), sum(delta) FROM (
            SELECT destination_id, state, -1 AS delta FROM old_rows
            UNION ALL
            SELECT destination_id, state, 1 FROM new_rows
        ) moves
        GROUP BY destination_id, state
        HAVING sum(delta) <> 0
        ON CONFLICT (destination_id, state, shard) DO UPDATE SET n = state_counts.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_counted_on_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gsd_count_states();
CREATE TRIGGER events_counted_on_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gsd_count_states();
CREATE TRIGGER events_counted_on_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gsd_count_states();

-- name: v2
-- One attempt counter: `attempts` counts the attempts recorded over the whole history (a replay no
-- longer resets it), and `replayed_at_attempt` keeps its value at the last replay, so the retry
-- policy counts attempts - replayed_at_attempt. Existing rows: the history's length becomes the
-- counter, and what the counter held before becomes the part after the baseline.
ALTER TABLE events ADD COLUMN replayed_at_attempt integer NOT NULL DEFAULT 0;
UPDATE events SET
    replayed_at_attempt = h.n - events.attempts,
    attempts = h.n
FROM (SELECT event_id, count(*)::integer AS n FROM event_attempts GROUP BY event_id) AS h
WHERE h.event_id = events.id;

-- name: v3
-- Per-person order by userId, else anonymousId, for every event type (it was the email first): the
-- events still to deliver (queued, leased) or that may be replayed (dead, rejected) get the key
-- events.ordering_key gives them now, read from their payload: a string id as it is, a number as
-- an integer when it is integral (up to 2^53) or written as one, else as float8 prints it (the
-- shortest form, as Python's repr; U+0000, which text cannot hold, as U+FFFD). An event naming
-- neither keeps its key. Then each person's oldest unfinished event is its one head.
CREATE FUNCTION pg_temp.gsd_id_text(id json) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN json_typeof(id) = 'string' THEN nullif(id #>> '{}', '')
        WHEN json_typeof(id) <> 'number' THEN NULL
        WHEN id::text ~ '^-?[0-9]+$' THEN (id::text)::numeric::text
        WHEN abs((id::text)::numeric) <= 9007199254740992
            AND (id::text)::numeric = trunc((id::text)::numeric)
            THEN trunc((id::text)::numeric)::text
        ELSE (id::text)::float8::text
    END
$$;
UPDATE events e SET ordering_key = rekeyed.ordering_key
FROM (
    SELECT id, coalesce(
        'userId:' || pg_temp.gsd_id_text(doc -> 'userId'),
        'anonymousId:' || pg_temp.gsd_id_text(doc -> 'anonymousId')
    ) AS ordering_key
    FROM (
        SELECT id, replace(convert_from(payload, 'UTF8'), '\u0000', '\ufffd')::json AS doc FROM events
        WHERE state IN ('queued', 'leased', 'dead', 'rejected')
    ) AS docs
) AS rekeyed
WHERE e.id = rekeyed.id AND rekeyed.ordering_key IS NOT NULL AND e.ordering_key <> rekeyed.ordering_key;
UPDATE events e SET head = (e.id = first.id)
FROM (
    SELECT destination_id, ordering_key, min(id) AS id FROM events
    WHERE state IN ('queued', 'leased')
    GROUP BY destination_id, ordering_key
) AS first
WHERE e.destination_id = first.destination_id AND e.ordering_key = first.ordering_key
    AND e.state IN ('queued', 'leased') AND e.head <> (e.id = first.id);
DROP FUNCTION pg_temp.gsd_id_text(json);

-- name: v4
-- The company each person was last associated with by a group event (DESIGN §3.6), per destination
-- (person = the event's ordering key): Timeline activities and usage counts are written to it.
CREATE TABLE IF NOT EXISTS last_companies (
    destination_id text NOT NULL,
    person text NOT NULL,
    gsid text NOT NULL,
    associated_at double precision NOT NULL,
    PRIMARY KEY (destination_id, person)
);
CREATE INDEX IF NOT EXISTS last_companies_by_age ON last_companies (associated_at);

-- name: v5
-- Usage counts (DESIGN §3.7, usage_store.py): the messageIds counted (so an event counts once,
-- whatever crash or retry), and one row per (destination, company, UTC day, metric) with its count
-- and what was last written to Gainsight.
-- (IF NOT EXISTS: tests that replay older steps run this one twice.)
CREATE TABLE IF NOT EXISTS usage_counted (
    destination_id text NOT NULL,
    message_id text NOT NULL,
    counted_at double precision NOT NULL,
    PRIMARY KEY (destination_id, message_id)
);
CREATE INDEX IF NOT EXISTS usage_counted_by_age ON usage_counted (counted_at);
CREATE TABLE IF NOT EXISTS usage_rows (
    destination_id text NOT NULL,
    company text NOT NULL,          -- the company's Gsid; '' = unattributed (never written)
    day text NOT NULL,              -- YYYY-MM-DD, UTC
    metric text NOT NULL,
    count bigint NOT NULL,
    written bigint NOT NULL DEFAULT 0,
    known boolean NOT NULL DEFAULT false,
    held boolean NOT NULL DEFAULT false,
    written_at double precision,
    PRIMARY KEY (destination_id, company, day, metric)
);
CREATE INDEX IF NOT EXISTS usage_rows_due ON usage_rows (destination_id, day) WHERE count <> written;

-- name: v6
-- What delivering each event spends of the rate budget (store_values.Cost), decided at ingest:
-- claims are sized by it per budget class, so counted events (none) and Timeline activities are
-- claimed while the sync budget is spent. Events queued before this step were sized as sync.
-- While a class is spent, the heads a claim can take are read by cost (ready_heads_costing).
ALTER TABLE events ADD COLUMN IF NOT EXISTS cost text NOT NULL DEFAULT 'sync';
CREATE INDEX IF NOT EXISTS events_claimable_by_cost ON events (cost, available_at, id) WHERE head;

-- name: v7
-- The group event behind each last association (its store id): a worker whose lease lapsed,
-- writing late, never replaces the association a later event of the person made.
ALTER TABLE last_companies ADD COLUMN IF NOT EXISTS event_id bigint NOT NULL DEFAULT 0;
