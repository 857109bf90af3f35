-- 055: a brand's crises are read by their own index, newest first, a page at a
-- time (crisis.SELECT_CRISES); the one index before held open crises only.

-- The page's order and its (started_at, id) cursor read backwards along it; the
-- export by id and a brand's deletion (ON DELETE CASCADE) find the brand's rows.
CREATE INDEX crises_by_brand_started ON crises (brand_id, started_at, id);
