-- An incremental metrics refresh reads, of the tenants whose rows it recomputes, their group
-- calls (traits over time): a small partial index finds them without scanning the tenant.
CREATE INDEX events_group ON events (tenant_id, ts) WHERE type = 'group';
