-- The SQLite store's schema, step by step (migrations.py runs them; never edit a released step,
-- add one). Each step runs in the migration's transaction; schema_version is the runner's.

-- name: v1
-- The first release's schema (written with IF NOT EXISTS, as that release created it at every start).

CREATE TABLE IF NOT EXISTS events (
    -- AUTOINCREMENT: ids are never reused, so they order a person's events and name dead letters.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL,
    state TEXT NOT NULL,            -- queued | leased | delivered | filtered | dead
    head INTEGER NOT NULL,          -- 1 = oldest unfinished event of its person: the only claimable one
    available_at REAL,              -- queued: claimable from; leased: lease expiry; NULL once final
    lease_owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    progress BLOB,                  -- JSON kept between tries of a resumable plan
    finished_at REAL,
    reason TEXT                     -- why it was dead-lettered
);
-- Claim reads only heads, so it stays O(limit) however many events wait behind them.
CREATE INDEX IF NOT EXISTS events_claimable ON events (available_at, id) WHERE head = 1;
-- Head-of-line lookups: is there an older unfinished event of this person, which one is next.
CREATE INDEX IF NOT EXISTS events_unfinished_by_person
    ON events (destination_id, ordering_key, id) WHERE state IN ('queued', 'leased');
CREATE INDEX IF NOT EXISTS events_dead ON events (id) WHERE state = 'dead';
CREATE INDEX IF NOT EXISTS events_prunable
    ON events (received_at) WHERE state IN ('delivered', 'filtered');

CREATE TABLE IF NOT EXISTS event_attempts (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    response BLOB                   -- Gainsight's JSON answer
);
CREATE INDEX IF NOT EXISTS event_attempts_by_event ON event_attempts (event_id, id);

-- Dedupe memory, apart from events so that pruning an event keeps its messageId.
CREATE TABLE IF NOT EXISTS seen_messages (
    destination_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (destination_id, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_messages_by_age ON seen_messages (seen_at);

-- Calls counted per tenant and fixed window; shared by every process on this file.
CREATE TABLE IF NOT EXISTS rate_windows (
    tenant_key TEXT NOT NULL,
    window_name TEXT NOT NULL,
    window_start REAL NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, window_name, window_start)
) WITHOUT ROWID;

-- Events per state, kept by triggers so counts() is O(1) with a million rows queued.
CREATE TABLE IF NOT EXISTS state_counts (
    state TEXT PRIMARY KEY,
    n INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO state_counts (state, n)
    VALUES ('queued', 0), ('leased', 0), ('delivered', 0), ('filtered', 0), ('dead', 0);

CREATE TRIGGER IF NOT EXISTS events_counted_on_insert AFTER INSERT ON events BEGIN
    UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER IF NOT EXISTS events_counted_on_delete AFTER DELETE ON events BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
END;
CREATE TRIGGER IF NOT EXISTS events_counted_on_move
AFTER UPDATE OF state ON events WHEN OLD.state <> NEW.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
    UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
END;

-- name: v2
-- Person runs, lease tokens and the memory of what Gainsight holds (DESIGN §6).
-- Attempts keep the request sent (JSON, secrets masked) and the merged call they rode on.
ALTER TABLE event_attempts ADD COLUMN request BLOB;
ALTER TABLE event_attempts ADD COLUMN call TEXT;
-- lease_owner now holds the claim's lease token; renewing a claim finds its events by it.
CREATE INDEX events_by_lease ON events (lease_owner) WHERE state = 'leased';
-- `unchanged` and `rejected` are final like delivered: pruned after the dedupe window (one partial
-- index per branch of prunable_events).
CREATE INDEX events_rejected ON events (received_at) WHERE state = 'rejected';
CREATE INDEX events_unchanged ON events (received_at) WHERE state = 'unchanged';
-- Admin views: an event by messageId; what finished in the last hour and day.
CREATE INDEX events_by_message ON events (message_id);
CREATE INDEX events_finished ON events (finished_at) WHERE finished_at IS NOT NULL;

-- A state's counter row is made when the state first occurs, so a new state needs no step.
DROP TRIGGER events_counted_on_insert;
DROP TRIGGER events_counted_on_delete;
DROP TRIGGER events_counted_on_move;
CREATE TRIGGER events_counted_on_insert AFTER INSERT ON events BEGIN
    INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
    ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER events_counted_on_delete AFTER DELETE ON events BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
END;
CREATE TRIGGER events_counted_on_move
AFTER UPDATE OF state ON events WHEN OLD.state <> NEW.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
    ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;

-- The Gsid learnt for each company name, per tenant (scope = domain): shared by restarts and by
-- every process on the store, so a known company is never searched for again.
CREATE TABLE company_gsids (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    gsid TEXT NOT NULL,
    learnt_at REAL NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;

-- What was last delivered per person (key: email, casefolded) and company (key: name), so a
-- write that would change nothing is skipped (GSD_UNCHANGED_TTL_SECONDS).
CREATE TABLE delivered_state (
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,             -- person | company
    key TEXT NOT NULL,
    state BLOB NOT NULL,            -- JSON object
    delivered_at REAL NOT NULL,
    PRIMARY KEY (scope, kind, key)
) WITHOUT ROWID;
CREATE INDEX delivered_state_by_age ON delivered_state (delivered_at);

-- name: v3
-- One attempt counter: `attempts` counts the attempts recorded over the whole history (a replay no
-- longer resets it), and `replayed_at_attempt` keeps its value at the last replay, so the retry
-- policy counts attempts - replayed_at_attempt. Existing rows: the history's length becomes the
-- counter, and what the counter held before becomes the part after the baseline.
ALTER TABLE events ADD COLUMN replayed_at_attempt INTEGER NOT NULL DEFAULT 0;
UPDATE events SET
    replayed_at_attempt = (SELECT count(*) FROM event_attempts WHERE event_id = events.id) - attempts,
    attempts = (SELECT count(*) FROM event_attempts WHERE event_id = events.id);

-- name: v4
-- Per-person order by userId, else anonymousId, for every event type (it was the email first): the
-- events still to deliver (queued, leased) or that may be replayed (dead, rejected) get the key
-- events.ordering_key gives them now, read from their payload: a string id as it is, a number as
-- an integer when it is integral (up to 2^53), else as Python's repr writes it (SQLite prints 15
-- significant digits: a number id with more, or a string id holding U+0000, may be keyed otherwise;
-- no SDK sends such ids). An event naming neither keeps its key. Then each person's oldest
-- unfinished event is its one head.
UPDATE events SET ordering_key = rekeyed.ordering_key
FROM (
    SELECT id, CASE
        WHEN json_type(doc, '$.userId') = 'text' AND json_extract(doc, '$.userId') <> ''
            THEN 'userId:' || json_extract(doc, '$.userId')
        WHEN json_type(doc, '$.userId') = 'integer'
            THEN 'userId:' || CAST(json_extract(doc, '$.userId') AS TEXT)
        WHEN json_type(doc, '$.userId') = 'real'
            THEN 'userId:' || CASE
                WHEN abs(json_extract(doc, '$.userId')) <= 9007199254740992
                    AND json_extract(doc, '$.userId') = CAST(json_extract(doc, '$.userId') AS INTEGER)
                THEN CAST(CAST(json_extract(doc, '$.userId') AS INTEGER) AS TEXT)
                ELSE replace(CAST(json_extract(doc, '$.userId') AS TEXT), '.0e', 'e') END
        WHEN json_type(doc, '$.anonymousId') = 'text' AND json_extract(doc, '$.anonymousId') <> ''
            THEN 'anonymousId:' || json_extract(doc, '$.anonymousId')
        WHEN json_type(doc, '$.anonymousId') = 'integer'
            THEN 'anonymousId:' || CAST(json_extract(doc, '$.anonymousId') AS TEXT)
        WHEN json_type(doc, '$.anonymousId') = 'real'
            THEN 'anonymousId:' || CASE
                WHEN abs(json_extract(doc, '$.anonymousId')) <= 9007199254740992
                    AND json_extract(doc, '$.anonymousId') = CAST(json_extract(doc, '$.anonymousId') AS INTEGER)
                THEN CAST(CAST(json_extract(doc, '$.anonymousId') AS INTEGER) AS TEXT)
                ELSE replace(CAST(json_extract(doc, '$.anonymousId') AS TEXT), '.0e', 'e') END
        END AS ordering_key
    FROM (
        SELECT id, CAST(payload AS TEXT) AS doc FROM events
        WHERE state IN ('queued', 'leased', 'dead', 'rejected')
    )
    WHERE json_valid(doc)
) AS rekeyed
WHERE events.id = rekeyed.id AND rekeyed.ordering_key IS NOT NULL
    AND events.ordering_key <> rekeyed.ordering_key;
-- Only the rows whose flag changes are written (a full queue is not rewritten for nothing).
UPDATE events SET head = NOT head
WHERE state IN ('queued', 'leased') AND head <> (id = (
    SELECT min(o.id) FROM events AS o
    WHERE o.destination_id = events.destination_id AND o.ordering_key = events.ordering_key
        AND o.state IN ('queued', 'leased')
));

-- name: v5
-- Space goes back to the file system: pruning frees pages and `PRAGMA incremental_vacuum` (run after
-- each prune) hands them back, so the file shrinks with its retention. Changing the mode of an
-- existing file takes one VACUUM, which SQLite runs only outside a transaction: the runner runs this
-- step's two statements before the migration's transaction (migrations.py), and again after a
-- crash between them, until the step is recorded.
PRAGMA auto_vacuum = INCREMENTAL;
VACUUM;

-- name: v6
-- The company each person was last associated with by a group event (DESIGN §3.6), per destination
-- (person = the event's ordering key): Timeline activities and usage counts are written to it.
CREATE TABLE IF NOT EXISTS last_companies (
    destination_id TEXT NOT NULL,
    person TEXT NOT NULL,
    gsid TEXT NOT NULL,
    associated_at REAL NOT NULL,
    PRIMARY KEY (destination_id, person)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS last_companies_by_age ON last_companies (associated_at);

-- name: v7
-- Usage counts (DESIGN §3.7, usage_store.py): the messageIds counted (so an event counts once,
-- whatever crash or retry), and one row per (destination, company, UTC day, metric) with its count
-- and what was last written to Gainsight. `counted` events are pruned like delivered ones.
-- (IF NOT EXISTS: tests that replay older steps run this one twice.)
CREATE TABLE IF NOT EXISTS usage_counted (
    destination_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    counted_at REAL NOT NULL,
    PRIMARY KEY (destination_id, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_counted_by_age ON usage_counted (counted_at);
CREATE TABLE IF NOT EXISTS usage_rows (
    destination_id TEXT NOT NULL,
    company TEXT NOT NULL,          -- the company's Gsid; '' = unattributed (never written)
    day TEXT NOT NULL,              -- YYYY-MM-DD, UTC
    metric TEXT NOT NULL,
    count INTEGER NOT NULL,
    written INTEGER NOT NULL DEFAULT 0,  -- the count last written to Gainsight
    known INTEGER NOT NULL DEFAULT 0,    -- 1: Gainsight holds the row
    held INTEGER NOT NULL DEFAULT 0,     -- 1: refused; out of flushes until its dead letter's replay
    written_at REAL,
    PRIMARY KEY (destination_id, company, day, metric)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_rows_due ON usage_rows (destination_id, day) WHERE count <> written;
CREATE INDEX IF NOT EXISTS events_counted ON events (received_at) WHERE state = 'counted';

-- name: v8
-- What delivering each event spends of the rate budget (store_values.Cost), decided at ingest:
-- claims are sized by it per budget class, so counted events (none) and Timeline activities are
-- claimed while the sync budget is spent. Events queued before this step were sized as sync.
-- While a class is spent, the heads a claim can take are read by cost (ready_heads_costing).
ALTER TABLE events ADD COLUMN cost TEXT NOT NULL DEFAULT 'sync';
CREATE INDEX IF NOT EXISTS events_claimable_by_cost ON events (cost, available_at, id) WHERE head = 1;

-- name: v9
-- The group event behind each last association (its store id): a worker whose lease lapsed,
-- writing late, never replaces the association a later event of the person made.
ALTER TABLE last_companies ADD COLUMN event_id INTEGER NOT NULL DEFAULT 0;
