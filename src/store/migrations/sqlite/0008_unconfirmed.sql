-- A Disconnect-NAK "no such session" from a NAS whose RouterOS API cannot be checked
-- proves nothing (the request may have reached a box that does not hold the session,
-- e.g. behind NAT): such a job is 'unconfirmed', not done, and the session's next
-- Interim queues it again. SQLite cannot change a CHECK constraint: rebuild the table
-- (same columns, same order).
CREATE TABLE disconnect_queue_new (
    id              INTEGER PRIMARY KEY,
    nas_ip          TEXT    NOT NULL,
    session_key     TEXT    NOT NULL,
    username        TEXT    NOT NULL,
    acct_session_id TEXT    NOT NULL,
    framed_ip       TEXT,
    session_start   INTEGER NOT NULL,
    reason          TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'dm-failed', 'done', 'failed', 'unconfirmed')),
    method          TEXT    CHECK (method IN ('dm', 'api', 'stop')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    error_cause     INTEGER,
    next_attempt_at INTEGER NOT NULL,
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL,
    UNIQUE (nas_ip, session_key)
);
INSERT INTO disconnect_queue_new SELECT * FROM disconnect_queue;
DROP TABLE disconnect_queue;
ALTER TABLE disconnect_queue_new RENAME TO disconnect_queue;
CREATE INDEX disconnect_queue_due ON disconnect_queue (next_attempt_at)
    WHERE state IN ('pending', 'dm-failed');
