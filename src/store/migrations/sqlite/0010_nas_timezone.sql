-- The NAS's own time zone (IANA name): policy schedules are read in its wall
-- clock. NULL: the module's `timezone`.
ALTER TABLE nas ADD COLUMN timezone TEXT;
