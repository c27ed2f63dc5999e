-- How often each flag served each variant, per day and per reader (layout decisions, OpenFeature
-- clients): the stale-flag report reads it. Flags are the deployment's, not a tenant's, so the
-- table is not keyed by tenant (a Citus reference table, like the catalog).
CREATE TABLE flag_evaluations (
    flag text NOT NULL,
    day date NOT NULL,
    variant text NOT NULL,
    source text NOT NULL,  -- layout | ofrep
    n bigint NOT NULL,
    PRIMARY KEY (flag, day, variant, source)
);
