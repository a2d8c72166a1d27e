-- Product policies (HSNM-style): named sets of rules assigned to users.
CREATE TABLE policies (
    name        TEXT    PRIMARY KEY,
    description TEXT,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL
);

-- One row per field set; field is a FieldDef.name (src/policies/fields.rs), value
-- as written (validated before saving). Deleted with the policy by the delete op.
CREATE TABLE policy_fields (
    policy TEXT NOT NULL,
    field  TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (policy, field)
) WITHOUT ROWID;

-- Custom check / reply attributes, in the order given.
CREATE TABLE policy_attrs (
    policy    TEXT    NOT NULL,
    list      TEXT    NOT NULL CHECK (list IN ('check', 'reply')),
    position  INTEGER NOT NULL,
    attribute TEXT    NOT NULL,
    op        TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    PRIMARY KEY (policy, list, position)
) WITHOUT ROWID;

-- At most one policy per user; username as the exact bytes of User-Name.
CREATE TABLE user_policies (
    username    TEXT    PRIMARY KEY,
    policy      TEXT    NOT NULL,
    assigned_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Users of a policy: counted by `policy list` and before removing one.
CREATE INDEX user_policies_by_policy ON user_policies (policy);

-- Distinct devices (Calling-Station-Id) seen since the user's policy was assigned:
-- (re)assigning deletes the user's rows, so a count is a plain range count.
CREATE TABLE user_devices (
    username           TEXT    NOT NULL,
    calling_station_id TEXT    NOT NULL,
    first_seen         INTEGER NOT NULL,
    PRIMARY KEY (username, calling_station_id)
) WITHOUT ROWID;
