-- The rollup's rates hold any ratio the day's figures can make, and a deleted row
-- marks the (brand, local day)s it counted on (decision 0021).

-- A day can have more engagements than impressions (X recounts one post's
-- impressions down while another's engagements grow): numeric(8, 5) stopped at
-- 999.99999 and the overflow failed the rollup. Unbounded numeric keeps the five
-- decimals the rollup rounds to.
ALTER TABLE daily_kpis
    ALTER COLUMN engagement_rate TYPE numeric,
    ALTER COLUMN click_through_rate TYPE numeric,
    ALTER COLUMN conversion_rate TYPE numeric;

-- Deletes, once per statement. A brand deleted in cascade has no zone left to read
-- and no day to mark: its KPI rows go with it.
CREATE FUNCTION mark_deleted_order_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT o.brand_id, CAST(o.ordered_at AT TIME ZONE b.time_zone AS date)
    FROM removed o JOIN brands b ON b.id = o.brand_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_mark_removed AFTER DELETE ON orders
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION mark_deleted_order_days();

CREATE FUNCTION mark_deleted_mention_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT m.brand_id, CAST(m.posted_at AT TIME ZONE b.time_zone AS date)
    FROM removed m JOIN brands b ON b.id = m.brand_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER mentions_mark_removed AFTER DELETE ON mentions
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION mark_deleted_mention_days();

-- A snapshot deleted on its own: its post is still there to name the brand. (One
-- deleted with its post is marked by the post's trigger below, which runs first.)
CREATE FUNCTION mark_deleted_snapshot_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT p.brand_id, CAST(s.captured_at AT TIME ZONE b.time_zone AS date)
    FROM removed s JOIN posts p ON p.id = s.post_id JOIN brands b ON b.id = p.brand_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER metric_snapshots_mark_removed AFTER DELETE ON metric_snapshots
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION mark_deleted_snapshot_days();

CREATE FUNCTION mark_deleted_follower_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The next day's follower change read the count deleted.
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT r.brand_id, d.day
    FROM removed r JOIN brands b ON b.id = r.brand_id
    CROSS JOIN LATERAL (VALUES (r.local_day), (r.local_day + 1)) AS d (day);
    RETURN NULL;
END
$$;
CREATE TRIGGER account_snapshots_mark_removed AFTER DELETE ON account_snapshots
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION mark_deleted_follower_days();

-- A post deleted takes its published day and, by cascade, its snapshots' growth
-- away. Its snapshots are gone before any AFTER trigger of the post's statement
-- runs, so their days are read before the row goes: per row, as posts are
-- deleted one at a time and rarely.
CREATE FUNCTION mark_deleted_post_days() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
BEGIN
    SELECT time_zone INTO zone FROM brands WHERE id = OLD.brand_id;
    IF NOT FOUND THEN
        RETURN OLD;
    END IF;
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT OLD.brand_id, CAST(at AT TIME ZONE zone AS date)
    FROM (
        SELECT OLD.published_at AS at WHERE OLD.state = 'published'
        UNION ALL
        SELECT captured_at FROM metric_snapshots WHERE post_id = OLD.id
    ) AS counted
    WHERE at IS NOT NULL;
    RETURN OLD;
END
$$;
CREATE TRIGGER posts_mark_removed BEFORE DELETE ON posts
    FOR EACH ROW EXECUTE FUNCTION mark_deleted_post_days();
