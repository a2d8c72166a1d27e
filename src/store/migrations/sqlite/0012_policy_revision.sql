-- A number bumped by every change to a policy definition (by the CLI, the module or a
-- hand edit), so the module keeps policies parsed and a login reads this one number
-- instead of the definition's rows.
CREATE TABLE policy_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO policy_revision (id, n) VALUES (1, 0);

CREATE TRIGGER policies_revision_insert AFTER INSERT ON policies
BEGIN UPDATE policy_revision SET n = n + 1; END;
CREATE TRIGGER policies_revision_update AFTER UPDATE ON policies
BEGIN UPDATE policy_revision SET n = n + 1; END;
CREATE TRIGGER policies_revision_delete AFTER DELETE ON policies
BEGIN UPDATE policy_revision SET n = n + 1; END;
CREATE TRIGGER policy_fields_revision_insert AFTER INSERT ON policy_fields
BEGIN UPDATE policy_revision SET n = n + 1; END;
CREATE TRIGGER policy_fields_revision_update AFTER UPDATE ON policy_fields
BEGIN UPDATE policy_revision SET n = n + 1; END;
CREATE TRIGGER policy_fields_revision_delete AFTER DELETE ON policy_fields
BEGIN UPDATE policy_revision SET n = n + 1; END;
CREATE TRIGGER policy_attrs_revision_insert AFTER INSERT ON policy_attrs
BEGIN UPDATE policy_revision SET n = n + 1; END;
CREATE TRIGGER policy_attrs_revision_update AFTER UPDATE ON policy_attrs
BEGIN UPDATE policy_revision SET n = n + 1; END;
CREATE TRIGGER policy_attrs_revision_delete AFTER DELETE ON policy_attrs
BEGIN UPDATE policy_revision SET n = n + 1; END;
