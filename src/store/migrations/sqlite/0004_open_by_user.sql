-- Open sessions per user (authorize counts them on every login) without walking
-- the user's whole session history.
CREATE INDEX sessions_open_by_user ON sessions (username) WHERE stop_time IS NULL;
