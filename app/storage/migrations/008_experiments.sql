-- Experiments: each unit's arm, stored at its first assignment so that later changes of weights
-- or traffic never move an enrolled unit; and the experiments stopped (or resumed) at run time.
CREATE TABLE experiment_assignments (
    tenant_id text NOT NULL,
    experiment text NOT NULL,
    unit_id text NOT NULL,  -- the user id; '' for an experiment on tenants
    arm text NOT NULL,
    assigned_at timestamptz NOT NULL,
    -- served by the server (a flag an arm sets): exposed then; widgets' exposure is the client's
    -- widget_viewed, read from the events
    exposed_at timestamptz,
    -- the arms' weights the unit was assigned under ("control:50,treatment:50"): the sample
    -- ratio is checked among units assigned under the current weights
    design text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, experiment, unit_id)
);
CREATE INDEX experiment_assignments_by_experiment ON experiment_assignments (experiment, arm);

CREATE TABLE experiment_state (
    experiment text PRIMARY KEY,
    status text NOT NULL,  -- stopped | running
    reason text NOT NULL,
    evidence jsonb NOT NULL DEFAULT '{}',
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by text NOT NULL  -- guardrail | a person's name or key
);
