-- A brand's export reads its audit trail in id order, a page at a time
-- (data_export.py); the trail's own index is by time, newest first.

CREATE INDEX audit_events_by_brand_and_id ON audit_events (brand_id, id);
