-- API-SSL certificates are verified: against the NAS's CA (PEM, kept here so every
-- server on a shared store has it) unless verification is turned off for the NAS.
-- NASes already on API-SSL keep working unverified (they were accepted so before);
-- `nas list` and the module's start-up log say so.
ALTER TABLE nas ADD COLUMN api_ca TEXT;
ALTER TABLE nas ADD COLUMN api_tls_verify INTEGER NOT NULL DEFAULT 1 CHECK (api_tls_verify IN (0, 1));
UPDATE nas SET api_tls_verify = 0 WHERE api_tls = 1;
