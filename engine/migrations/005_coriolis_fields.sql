-- 005_coriolis_fields.sql - a deployment keeps the notes its transfer had when
-- it was deployed (as Coriolis copies them), shown with the deployment; the
-- deployments made before this migration take their transfer's notes now.
ALTER TABLE deployments ADD COLUMN notes text NOT NULL DEFAULT '';
UPDATE deployments d SET notes = t.notes FROM transfers t WHERE t.id = d.transfer_id;
