-- The product's catalog: templates, integrations, help articles, lessons and features, with the
-- embedding of each item's text. It is the product's own content, the same for every tenant, so it
-- is not keyed by tenant: on a distributed PostgreSQL (Citus) it is a reference table, copied to
-- every node.
CREATE TABLE catalog_items (
    item_id      text        NOT NULL PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('template', 'integration', 'article',
                                                      'lesson', 'feature')),
    title        text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    href         text        NOT NULL DEFAULT '',
    tags         text[]      NOT NULL DEFAULT '{}',
    industries   text[]      NOT NULL DEFAULT '{}',
    roles        text[]      NOT NULL DEFAULT '{}',
    content_hash text        NOT NULL,
    embedding    bytea,                  -- float32 vector of the text whose hash is embedded_hash
    embedded_hash text,
    model        text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX catalog_items_stale ON catalog_items (item_id) WHERE embedded_hash IS DISTINCT FROM content_hash;
