-- Service sessions (Juniper Service Manager style) and subscriber states with
-- events (src/services, src/states).

-- Services an operator defines. timeout (s) and volume (MB) are the 24-bit values
-- of ERX-Service-Timeout / -Volume (0 = no limit), normalised before saving.
-- nas_service: the name with parameters the NAS knows (ERX-Service-Activate, the
-- ISG service); NULL = name. rate_limit: the Mikrotik-Rate-Limit while active, on
-- NASes that cannot enforce services themselves.
CREATE TABLE services (
    name        TEXT    PRIMARY KEY CHECK (name <> ''),
    timeout     INTEGER NOT NULL DEFAULT 0 CHECK (timeout BETWEEN 0 AND 16777215),
    volume_mb   INTEGER NOT NULL DEFAULT 0 CHECK (volume_mb BETWEEN 0 AND 16777215),
    rate_limit  TEXT,
    nas_service TEXT,
    description TEXT,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL
);

-- A user's service session: 'waiting' starts at the next login, 'active' runs
-- (activated_at; base_output = the output octets of the user's sessions open at
-- activation, the baseline of its volume), 'ended' is over (end_reason).
-- persistent: activated again at every login.
CREATE TABLE user_services (
    username     TEXT    NOT NULL,
    service      TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('waiting', 'active', 'ended')),
    persistent   INTEGER NOT NULL DEFAULT 0 CHECK (persistent IN (0, 1)),
    activated_at INTEGER,
    base_output  INTEGER NOT NULL DEFAULT 0,
    used_output  INTEGER NOT NULL DEFAULT 0,
    ended_at     INTEGER,
    end_reason   TEXT,
    updated      INTEGER NOT NULL,
    PRIMARY KEY (username, service)
) WITHOUT ROWID;
CREATE INDEX user_services_active ON user_services (state) WHERE state = 'active';

-- Per-user state (seed 004). rate: the Mikrotik-Rate-Limit the user has now as far
-- as the module knows; base_rate: what the last login got from `users` / the policy;
-- rate_override: the operator's (`user rate`). version: optimistic concurrency between the module's
-- threads and the CLI (a transition commits only onto the state it was computed from).
CREATE TABLE subscribers (
    username      TEXT    PRIMARY KEY,
    deleted       INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    logged_in     INTEGER NOT NULL DEFAULT 0 CHECK (logged_in IN (0, 1)),
    redirected    INTEGER NOT NULL DEFAULT 0 CHECK (redirected IN (0, 1)),
    blocked       INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
    rate          TEXT,
    base_rate     TEXT,
    rate_override TEXT,
    version       INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL,
    updated       INTEGER NOT NULL
) WITHOUT ROWID;
-- The states job looks at redirected users every tick.
CREATE INDEX subscribers_redirected ON subscribers (username) WHERE redirected = 1;

-- Every state change. The hook columns record the operator hook's runs: state
-- 'none' (no hook for the event), 'pending' (due at next_attempt_at), 'done',
-- 'failed' (gave up), 'skipped' (the NAS row says not to).
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    username        TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    old_value       TEXT,
    new_value       TEXT,
    source          TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    detail          TEXT,
    hook_state      TEXT    NOT NULL DEFAULT 'none'
                    CHECK (hook_state IN ('none', 'pending', 'done', 'failed', 'skipped')),
    hook_attempts   INTEGER NOT NULL DEFAULT 0,
    hook_exit       INTEGER,
    hook_output     TEXT,
    next_attempt_at INTEGER
);
CREATE INDEX events_by_user ON events (username, id);
CREATE INDEX events_hook_due ON events (next_attempt_at) WHERE hook_state = 'pending';

-- NAS actions of events, one row per session: CoA-Requests (service on/off, rate)
-- and RouterOS API address-list changes (redirect on/off). Retried with backoff;
-- on_failure 'disconnect' queues the session's disconnection once they give up.
CREATE TABLE nas_actions (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER,
    action          TEXT    NOT NULL
                    CHECK (action IN ('service-on', 'service-off', 'rate', 'redirect', 'redirect-cancel')),
    nas_ip          TEXT    NOT NULL,
    session_key     TEXT    NOT NULL,
    username        TEXT    NOT NULL,
    acct_session_id TEXT    NOT NULL,
    framed_ip       TEXT,
    session_start   INTEGER NOT NULL,
    service         TEXT,
    nas_service     TEXT,
    svc_timeout     INTEGER,
    svc_volume      INTEGER,
    rate_limit      TEXT,
    on_failure      TEXT    NOT NULL DEFAULT 'keep' CHECK (on_failure IN ('keep', 'disconnect')),
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'done', 'failed', 'gone')),
    method          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    error_cause     INTEGER,
    next_attempt_at INTEGER NOT NULL,
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL
);
CREATE INDEX nas_actions_due ON nas_actions (next_attempt_at) WHERE state = 'pending';

-- Users whose sessions opened or closed since the states job last looked (kept by
-- the triggers below in the accounting update's own transaction, so no Start or
-- Stop is missed across a crash). due: when to look (a login without a session yet
-- is looked at after a grace time). A REPLACE gives a new rowid: the job deletes
-- only the row it read.
CREATE TABLE presence_check (
    username TEXT    NOT NULL UNIQUE,
    due      INTEGER NOT NULL
);
CREATE TRIGGER presence_on_start AFTER INSERT ON sessions
BEGIN
    INSERT OR REPLACE INTO presence_check (username, due) VALUES (NEW.username, 0);
END;
CREATE TRIGGER presence_on_stop AFTER UPDATE OF stop_time ON sessions
    WHEN OLD.stop_time IS NOT NEW.stop_time
BEGIN
    INSERT OR REPLACE INTO presence_check (username, due) VALUES (NEW.username, 0);
END;

-- Per NAS: whether an Accounting-Stop ending a user's last session runs the
-- user_disconnect hook (seed 004's "don't send user_disconnect on Stop"), and the
-- RouterOS firewall address list redirected users' addresses go into.
ALTER TABLE nas ADD COLUMN stop_event INTEGER NOT NULL DEFAULT 1 CHECK (stop_event IN (0, 1));
ALTER TABLE nas ADD COLUMN redirect_list TEXT;
