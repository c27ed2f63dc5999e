-- How long decisions took per experiment arm (the server's own measure, a guardrail): per day,
-- the count, sum and sum of squares, which every process adds to every minute.
CREATE TABLE experiment_latency (
    experiment text NOT NULL,
    arm text NOT NULL,
    day date NOT NULL,
    n bigint NOT NULL,
    sum_ms double precision NOT NULL,
    sum_sq_ms double precision NOT NULL,
    PRIMARY KEY (experiment, arm, day)
);
