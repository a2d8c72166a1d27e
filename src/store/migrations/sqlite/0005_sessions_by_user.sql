-- One index of a user's sessions for both readers: the login's open-session count
-- (username = ? AND stop_time IS NULL; NULLs sort first, so it is one short range)
-- and the CLI's history. 0001's (username, start_time) and 0004's partial (username)
-- each took a random page per session Start on a large store, and Stop moved an
-- entry of the second; here Stop moves the entry within the user's own range.
DROP INDEX sessions_open_by_user;
DROP INDEX sessions_by_user;
CREATE INDEX sessions_by_user ON sessions (username, stop_time);
