-- Which retention windows hold which events: (window, call type, track event's name or ''). A
-- reader of a few event names (the metrics' refresh) reads only the partitions of the windows
-- that hold them, whatever windows those events had when they were stored. Kept up by ingestion.
CREATE TABLE event_windows (
    keep_days integer NOT NULL,
    type      text    NOT NULL,
    event     text    NOT NULL DEFAULT '',
    PRIMARY KEY (type, event, keep_days)
);

INSERT INTO event_windows (keep_days, type, event)
SELECT DISTINCT keep_days, type, CASE WHEN type = 'track' THEN coalesce(event, '') ELSE '' END
  FROM events;
