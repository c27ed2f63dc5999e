-- Users (or whole tenants: user_id '') erased and suppressed: their later events are dropped
-- (counted here, never stored), as Segment's delete-and-suppress does.
CREATE TABLE suppressions (
    tenant_id     text        NOT NULL,
    user_id       text        NOT NULL,  -- '' for the whole tenant
    suppressed_at timestamptz NOT NULL DEFAULT now(),
    dropped       bigint      NOT NULL DEFAULT 0,  -- events dropped since
    PRIMARY KEY (tenant_id, user_id)
);
