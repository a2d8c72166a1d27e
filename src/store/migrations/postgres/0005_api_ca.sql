-- As SQLite's 0016: API-SSL verified against the NAS's CA unless turned off.
ALTER TABLE nas ADD COLUMN api_ca TEXT;
ALTER TABLE nas ADD COLUMN api_tls_verify BIGINT NOT NULL DEFAULT 1 CHECK (api_tls_verify IN (0, 1));
UPDATE nas SET api_tls_verify = 0 WHERE api_tls = 1;
