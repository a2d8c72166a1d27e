-- Sessions: one row per (NAS, session key). Counters are the highest values seen
-- (the baseline for the next delta); i64 columns keep >4 GiB counters exact.
CREATE TABLE sessions (
    id                 INTEGER PRIMARY KEY,
    nas_ip             TEXT    NOT NULL CHECK (nas_ip <> ''),
    session_key        TEXT    NOT NULL CHECK (session_key <> ''),
    acct_session_id    TEXT    NOT NULL,
    username           TEXT    NOT NULL,
    nas_port           INTEGER,
    framed_ip          TEXT,
    calling_station_id TEXT,
    start_time         INTEGER NOT NULL,
    last_update        INTEGER NOT NULL,
    stop_time          INTEGER,
    session_time       INTEGER NOT NULL DEFAULT 0 CHECK (session_time >= 0),
    input_octets       INTEGER NOT NULL DEFAULT 0 CHECK (input_octets >= 0),
    output_octets      INTEGER NOT NULL DEFAULT 0 CHECK (output_octets >= 0),
    terminate_cause    TEXT,
    closed_reason      TEXT,
    UNIQUE (nas_ip, session_key)
);
CREATE INDEX sessions_by_user ON sessions (username, start_time);
-- Stale sweeps and Accounting-On/Off only look at open sessions.
CREATE INDEX sessions_open_by_last_update ON sessions (last_update) WHERE stop_time IS NULL;
CREATE INDEX sessions_open_by_nas ON sessions (nas_ip) WHERE stop_time IS NULL;
CREATE INDEX sessions_by_start ON sessions (start_time);

-- Usage per user and local day / month (in the store's configured time zone).
CREATE TABLE usage_day (
    username      TEXT    NOT NULL,
    day           TEXT    NOT NULL, -- YYYY-MM-DD
    input_octets  INTEGER NOT NULL DEFAULT 0,
    output_octets INTEGER NOT NULL DEFAULT 0,
    session_time  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (username, day)
) WITHOUT ROWID;

CREATE TABLE usage_month (
    username      TEXT    NOT NULL,
    month         TEXT    NOT NULL, -- YYYY-MM
    input_octets  INTEGER NOT NULL DEFAULT 0,
    output_octets INTEGER NOT NULL DEFAULT 0,
    session_time  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (username, month)
) WITHOUT ROWID;
