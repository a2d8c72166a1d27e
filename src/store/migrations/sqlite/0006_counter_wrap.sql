-- NASes without Gigawords have 32-bit octet counters that wrap every 4 GiB.
-- gigawords: one of the session's packets carried Acct-*-Gigawords (its counters
-- are 64-bit: a counter that goes backwards never wrapped).
-- counter_wrap: 'auto' counts a plausible wrap of such a NAS, 'off' never does.
ALTER TABLE sessions ADD COLUMN gigawords INTEGER NOT NULL DEFAULT 0 CHECK (gigawords IN (0, 1));
ALTER TABLE nas ADD COLUMN counter_wrap TEXT NOT NULL DEFAULT 'auto'
    CHECK (counter_wrap IN ('auto', 'off'));
