-- What the writers' caches (capping headroom, policy quotas, modulated users) are
-- checked against at every batch, as SQLite's PRAGMA data_version: bumped by every
-- row written of limits, topups, usage marks or policies, on any server (row
-- triggers: a statement that changes nothing, as a decision's DELETE of no
-- consumption rows, bumps nothing).
-- Accounting does not bump it (the headroom checks the usage totals itself).
CREATE TABLE store_version (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO store_version (id, n) VALUES (1, 0);

CREATE FUNCTION rlm_store_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE store_version SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END $$;

CREATE TRIGGER topups_version AFTER INSERT OR UPDATE OR DELETE ON topups
    FOR EACH ROW EXECUTE FUNCTION rlm_store_version_bump();
CREATE TRIGGER topup_consumption_version AFTER INSERT OR UPDATE OR DELETE ON topup_consumption
    FOR EACH ROW EXECUTE FUNCTION rlm_store_version_bump();
CREATE TRIGGER usage_marks_version AFTER INSERT OR UPDATE OR DELETE ON usage_marks
    FOR EACH ROW EXECUTE FUNCTION rlm_store_version_bump();
CREATE TRIGGER user_limits_version AFTER INSERT OR UPDATE OR DELETE ON user_limits
    FOR EACH ROW EXECUTE FUNCTION rlm_store_version_bump();
CREATE TRIGGER policies_version AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION rlm_store_version_bump();
CREATE TRIGGER policy_fields_version AFTER INSERT OR UPDATE OR DELETE ON policy_fields
    FOR EACH ROW EXECUTE FUNCTION rlm_store_version_bump();
CREATE TRIGGER policy_attrs_version AFTER INSERT OR UPDATE OR DELETE ON policy_attrs
    FOR EACH ROW EXECUTE FUNCTION rlm_store_version_bump();
CREATE TRIGGER user_policies_version AFTER INSERT OR UPDATE OR DELETE ON user_policies
    FOR EACH ROW EXECUTE FUNCTION rlm_store_version_bump();
