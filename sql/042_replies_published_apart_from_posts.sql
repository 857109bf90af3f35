-- 042: a day's replies to mentions are counted apart from its posts:
-- `posts_published` counts the brand's own posts only, `replies_published` the
-- replies it sent from the inbox.

-- NULL on a row computed before this migration, whose `posts_published` counted
-- replies too; such a row keeps that meaning until the rollup rewrites it. The
-- rows of an offboarded brand are never rewritten (its kept KPIs are frozen),
-- so theirs stay NULL.
ALTER TABLE daily_kpis ADD COLUMN replies_published integer;

-- Every other day with a row is computed again once, so its posts lose the
-- replies they counted and its replies get their own figure.
INSERT INTO kpi_marks (brand_id, day)
SELECT DISTINCT k.brand_id, k.day
FROM daily_kpis k JOIN brands b ON b.id = k.brand_id
WHERE b.offboarded_at IS NULL;
