-- Usage per UTC hour, only for users whose stored policy modulates the rate (the
-- writer keeps their names in memory; everyone else's accounting writes nothing
-- more). Rate modulation over "the last N hours" and "ignore inactive hours" sum
-- these buckets; the background job deletes those older than 32 days.
CREATE TABLE usage_hour (
    username      TEXT    NOT NULL,
    hour          INTEGER NOT NULL,
    input_octets  INTEGER NOT NULL DEFAULT 0,
    output_octets INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (username, hour)
) WITHOUT ROWID;

-- The Mikrotik-Rate-Limit a modulated or throttled login was given (post-auth does
-- not know the session yet): the baseline the background job compares with until it
-- has sent the session a rate of its own.
CREATE TABLE policy_logins (
    username   TEXT    NOT NULL,
    nas_ip     TEXT    NOT NULL,
    rate_limit TEXT,
    throttled  INTEGER NOT NULL DEFAULT 0 CHECK (throttled IN (0, 1)),
    at         INTEGER NOT NULL,
    PRIMARY KEY (username, nas_ip)
) WITHOUT ROWID;

-- RFC 5176 CoA-Requests sent from the background thread, one row per session and
-- purpose: 'modulation' (the rate the job last decided; acked = what the NAS has) or
-- 'exhausted' (throttle / redirect once the capping allowance is used up, queued by
-- the writer in the accounting update's commit). A NAK or no answer queues a
-- disconnect instead (state fallback).
CREATE TABLE coa_queue (
    id              INTEGER PRIMARY KEY,
    nas_ip          TEXT    NOT NULL,
    session_key     TEXT    NOT NULL,
    username        TEXT    NOT NULL,
    acct_session_id TEXT    NOT NULL,
    framed_ip       TEXT,
    session_start   INTEGER NOT NULL,
    purpose         TEXT    NOT NULL CHECK (purpose IN ('modulation', 'exhausted')),
    rate_limit      TEXT,
    address_list    TEXT,
    reason          TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'acked', 'fallback')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    error_cause     INTEGER,
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL,
    UNIQUE (nas_ip, session_key, purpose)
);
CREATE INDEX coa_queue_pending ON coa_queue (id) WHERE state = 'pending';
