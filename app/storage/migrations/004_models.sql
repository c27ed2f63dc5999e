-- Trained models (the propensity models of `cairn recs train`), one JSON document per name. They
-- are learnt from every tenant's history and hold only coefficients, the same for every tenant, so
-- the table is not keyed by tenant: on a distributed PostgreSQL (Citus) it is a reference table.
-- Saving one notifies 'cairn_models', so running servers load it again.
CREATE TABLE models (
    name       text        NOT NULL PRIMARY KEY,
    body       jsonb       NOT NULL,
    trained_at timestamptz NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now()
);
