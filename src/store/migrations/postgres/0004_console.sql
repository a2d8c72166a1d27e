-- The operator console (`rlm-rust serve`); as SQLite's 0015.
CREATE TABLE operators (
    name          TEXT   COLLATE "C" PRIMARY KEY,
    password_hash TEXT   NOT NULL,
    role          TEXT   NOT NULL CHECK (role IN ('admin', 'viewer')),
    created       BIGINT NOT NULL,
    updated       BIGINT NOT NULL
);

CREATE TABLE operator_sessions (
    token_hash TEXT   PRIMARY KEY,
    operator   TEXT   COLLATE "C" NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    csrf       TEXT   NOT NULL,
    created    BIGINT NOT NULL,
    expires    BIGINT NOT NULL
);
CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator);

CREATE INDEX sessions_open_by_start ON sessions (start_time, id) WHERE stop_time IS NULL;
