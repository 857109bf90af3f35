-- 050: the operator's deployment-wide publishing pause, a row every publish run
-- reads before it claims and again before each send (decision 0077).

-- At most one row: present while the deployment is paused, gone once resumed.
CREATE TABLE publishing_pause (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    paused_at timestamptz NOT NULL,
    paused_by text NOT NULL
);
