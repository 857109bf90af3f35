-- 045: a day's impressions, engagements and link clicks (and the rates built from
-- them) are the brand's own posts' only; its replies to mentions get their own
-- `reply_impressions` and `reply_engagements`. Migration 042 split the counts but
-- left replies' metrics in the posts' figures, so a day's engagement rate mixed
-- the two.

-- NULL on a row computed before this migration, whose post figures still hold its
-- replies' metrics; such a row keeps that meaning until the rollup rewrites it. An
-- offboarded brand's kept rows are never rewritten (its KPIs are frozen), so
-- theirs stay NULL. A reply carries no link (inbox.py), so it has no link clicks
-- of its own to keep.
ALTER TABLE daily_kpis
    ADD COLUMN reply_impressions bigint,
    ADD COLUMN reply_engagements bigint;

-- Every other day with a row is computed again once, as 042 did, so its posts'
-- figures lose the replies' and the replies get their own.
INSERT INTO kpi_marks (brand_id, day)
SELECT DISTINCT k.brand_id, k.day
FROM daily_kpis k JOIN brands b ON b.id = k.brand_id
WHERE b.offboarded_at IS NULL;
