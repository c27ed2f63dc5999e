-- Milestones reached anywhere in a tenant are looked up per event name.
CREATE INDEX user_event_days_tenant_event ON user_event_days (tenant_id, event);
