-- Identity stitching. A user row is `identified` once any of its events carried a userId; a row
-- made only of anonymousId events is not. A browser (publishable key) may link only an anonymous
-- id to its user, never another identified user, and an anonymous history joining a user keeps
-- the user's own first_seen. Rows from before this migration count as identified.
ALTER TABLE users ADD COLUMN identified boolean NOT NULL DEFAULT true;

-- Who was merged into a user: read when the user is merged on, erased or exported. When: a
-- metrics refresh drops what it computed for an id merged while it ran.
CREATE INDEX aliases_user ON aliases (tenant_id, user_id);
ALTER TABLE aliases ADD COLUMN linked_at timestamptz NOT NULL DEFAULT now();
