-- NASes the module talks back to (RFC 5176 Disconnect-Request, RouterOS API).
-- nas_ip is the NAS-IP-Address the NAS sends; coa_host NULL means send to nas_ip
-- (set it when the NAS sits behind NAT); secret NULL means the clients.conf secret.
CREATE TABLE nas (
    id             INTEGER PRIMARY KEY,
    nas_ip         TEXT    NOT NULL UNIQUE CHECK (nas_ip <> ''),
    name           TEXT    UNIQUE,
    type           TEXT    NOT NULL DEFAULT 'mikrotik',
    coa_host       TEXT,
    coa_port       INTEGER NOT NULL DEFAULT 3799 CHECK (coa_port BETWEEN 1 AND 65535),
    secret         TEXT,
    api_host       TEXT,
    api_port       INTEGER NOT NULL DEFAULT 8728 CHECK (api_port BETWEEN 1 AND 65535),
    api_user       TEXT,
    api_password   TEXT,
    api_tls        INTEGER NOT NULL DEFAULT 0 CHECK (api_tls IN (0, 1)),
    api_timeout_ms INTEGER NOT NULL DEFAULT 5000 CHECK (api_timeout_ms > 0),
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL
);

-- One disconnect job per session, however often it is enqueued.
CREATE TABLE disconnect_queue (
    id              INTEGER PRIMARY KEY,
    nas_ip          TEXT    NOT NULL,
    session_key     TEXT    NOT NULL,
    username        TEXT    NOT NULL,
    acct_session_id TEXT    NOT NULL,
    framed_ip       TEXT,
    session_start   INTEGER NOT NULL,
    reason          TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'dm-failed', 'done', 'failed')),
    method          TEXT    CHECK (method IN ('dm', 'api', 'stop')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    error_cause     INTEGER,
    next_attempt_at INTEGER NOT NULL,
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL,
    UNIQUE (nas_ip, session_key)
);
-- The worker polls for due jobs of the two active states.
CREATE INDEX disconnect_queue_due ON disconnect_queue (next_attempt_at)
    WHERE state IN ('pending', 'dm-failed');

-- One row per bulk reconciliation run against a NAS.
CREATE TABLE bulk_runs (
    id       INTEGER PRIMARY KEY,
    nas_ip   TEXT    NOT NULL,
    started  INTEGER NOT NULL,
    finished INTEGER,
    seen     INTEGER NOT NULL DEFAULT 0,
    removed  INTEGER NOT NULL DEFAULT 0,
    failed   INTEGER NOT NULL DEFAULT 0,
    error    TEXT
);
