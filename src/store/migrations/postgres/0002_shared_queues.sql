-- Several servers on one store: a job is
-- claimed by pushing its next attempt out by a lease and naming the claimer, so
-- that exactly one server works it and a server killed mid-job leaves it to the
-- others once the lease runs out.
ALTER TABLE disconnect_queue ADD COLUMN claimed_by TEXT;
ALTER TABLE nas_actions ADD COLUMN claimed_by TEXT;
ALTER TABLE events ADD COLUMN claimed_by TEXT;
ALTER TABLE coa_queue ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE coa_queue ADD COLUMN claimed_by TEXT;

-- The automatic month-boundary bulk disconnect: one server per NAS and month.
CREATE TABLE bulk_month_claims (
    nas_ip      TEXT COLLATE "C"   NOT NULL,
    month_start BIGINT NOT NULL,
    claimed_by  TEXT    NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (nas_ip, month_start)
);

-- Control-list values of a user's last login (users file, radcheck, LDAP), for
-- that user's accounting on any server and after a restart.
CREATE TABLE login_controls (
    username TEXT COLLATE "C" NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('limits', 'policy')),
    vals     TEXT    NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (username, kind)
);
