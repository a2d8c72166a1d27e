-- Capping: topups, their per-period consumption, the notification outbox and
-- per-user limits set with the CLI.

-- type: bitmask 1 traffic, 2 uptime, 4 auto. value: MB or minutes.
-- Validity [valid_from, valid_to) in unix seconds.
CREATE TABLE topups (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    TEXT    NOT NULL,
    type        INTEGER NOT NULL,
    valid_from  INTEGER NOT NULL,
    valid_to    INTEGER NOT NULL,
    value       INTEGER NOT NULL CHECK (value >= 0),
    depleted    INTEGER NOT NULL DEFAULT 0,
    depleted_at INTEGER,
    created     INTEGER NOT NULL
);
CREATE INDEX topups_by_user ON topups (username, valid_to);

-- Bytes / seconds a topup absorbed in the period starting at period_start.
CREATE TABLE topup_consumption (
    topup_id     INTEGER NOT NULL,
    period_start INTEGER NOT NULL,
    consumed     INTEGER NOT NULL CHECK (consumed >= 0),
    PRIMARY KEY (topup_id, period_start)
) WITHOUT ROWID;

-- One row per notification; key de-duplicates re-evaluations.
-- body: JSON object of the template variables.
CREATE TABLE notification_outbox (
    key             TEXT    PRIMARY KEY,
    username        TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created         INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT
) WITHOUT ROWID;
CREATE INDEX outbox_due ON notification_outbox (next_attempt_at) WHERE sent_at IS NULL;

-- Capping attributes (canonical Rust-* names) per user, set with the CLI.
CREATE TABLE user_limits (
    username  TEXT NOT NULL,
    attribute TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (username, attribute)
) WITHOUT ROWID;
