-- 048: a failed alert waits a back-off before its webhook is called again, as an
-- escalation does: alerts are sent from every scoring run, and a dead webhook
-- called at each one held every run for its timeout.

ALTER TABLE alert_outbox ADD COLUMN next_attempt_at timestamptz;
-- An alert queued before this column existed is due now, as it was.
UPDATE alert_outbox SET next_attempt_at = created_at;
ALTER TABLE alert_outbox ALTER COLUMN next_attempt_at SET NOT NULL;

DROP INDEX alert_outbox_pending;
CREATE INDEX alert_outbox_pending ON alert_outbox (next_attempt_at, id)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;
