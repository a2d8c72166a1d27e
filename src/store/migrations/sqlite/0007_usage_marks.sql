-- Usage marks: the user's usage in the capping period (starting at period_start)
-- recorded before time `at`, a topup's valid_from or valid_to inside the period.
-- Written once, by the first capping decision after `at`; they split the period's
-- usage into what lies before and after each boundary, so a topup covers only the
-- usage of its own validity. traffic: bytes (input + output); uptime: seconds.
CREATE TABLE usage_marks (
    username     TEXT    NOT NULL,
    period_start INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    traffic      INTEGER NOT NULL CHECK (traffic >= 0),
    uptime       INTEGER NOT NULL CHECK (uptime >= 0),
    PRIMARY KEY (username, period_start, at)
) WITHOUT ROWID;
