-- The operator console (`rlm-rust serve`): operators with password hashes (argon2id,
-- PHC strings) and a role, and their login sessions (only the SHA-256 of a session
-- token is kept, so a copy of the database logs nobody in).
CREATE TABLE operators (
    name          TEXT    PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'viewer')),
    created       INTEGER NOT NULL,
    updated       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE operator_sessions (
    token_hash TEXT    PRIMARY KEY,
    operator   TEXT    NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    csrf       TEXT    NOT NULL,
    created    INTEGER NOT NULL,
    expires    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator);

-- The active sessions screen pages open sessions newest first (keyset paging) over
-- 100,000+ rows without walking the closed ones.
CREATE INDEX sessions_open_by_start ON sessions (start_time, id) WHERE stop_time IS NULL;
