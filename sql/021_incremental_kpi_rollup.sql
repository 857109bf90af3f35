-- Daily KPIs gain cost per attributed order and follower change; each snapshot keeps
-- its growth since the post's previous one, and every write that changes a brand's
-- day marks that (brand, local day) for the next rollup (decision 0021).

ALTER TABLE daily_kpis
    ADD COLUMN cost_per_attributed_order_usd numeric(12, 4),
    ADD COLUMN follower_change bigint;

-- Growth since the post's previous snapshot (the whole figure for its first one).
ALTER TABLE metric_snapshots
    ADD COLUMN impressions_growth bigint,
    ADD COLUMN engagements_growth bigint,
    ADD COLUMN link_clicks_growth bigint;

UPDATE metric_snapshots s SET
    impressions_growth = g.impressions_growth,
    engagements_growth = g.engagements_growth,
    link_clicks_growth = g.link_clicks_growth
FROM (
    SELECT post_id, captured_at,
        impressions - COALESCE(LAG(impressions) OVER w, 0) AS impressions_growth,
        (likes + reposts + replies + quotes + bookmarks)
            - COALESCE(LAG(likes + reposts + replies + quotes + bookmarks) OVER w, 0)
            AS engagements_growth,
        COALESCE(link_clicks, 0) - COALESCE(LAG(link_clicks) OVER w, 0)
            AS link_clicks_growth
    FROM metric_snapshots
    WINDOW w AS (PARTITION BY post_id ORDER BY captured_at)
) AS g
WHERE s.post_id = g.post_id AND s.captured_at = g.captured_at;

ALTER TABLE metric_snapshots
    ALTER COLUMN impressions_growth SET NOT NULL,
    ALTER COLUMN engagements_growth SET NOT NULL,
    ALTER COLUMN link_clicks_growth SET NOT NULL;

-- The rollup reads a range of days from each source.
CREATE INDEX metric_snapshots_by_time ON metric_snapshots (captured_at);
CREATE INDEX orders_by_time ON orders (ordered_at);
CREATE INDEX posts_by_published_at ON posts (published_at)
    WHERE state = 'published';
CREATE INDEX mentions_by_posted_at ON mentions (posted_at);
CREATE INDEX cost_ledger_by_time ON cost_ledger (occurred_at);

-- A (brand, local day) whose figures changed since the rollup last wrote it. One row
-- per write, never updated: a writer takes no lock a rollup could hold, and the
-- rollup deletes exactly the marks its snapshot saw. No foreign key: marks written
-- while a brand's rows are deleted in cascade must not fail that delete; the rollup
-- drops marks of brands that no longer exist.
CREATE TABLE kpi_marks (
    id        bigserial PRIMARY KEY,
    brand_id  uuid NOT NULL,
    day       date NOT NULL
);
CREATE INDEX kpi_marks_by_brand ON kpi_marks (brand_id);

-- Every day that has a KPI row or anything to count is computed again once, so the
-- new columns are filled everywhere.
INSERT INTO kpi_marks (brand_id, day)
SELECT DISTINCT brand_id, day FROM (
    SELECT brand_id, day FROM daily_kpis
    UNION ALL
    SELECT p.brand_id, CAST(s.captured_at AT TIME ZONE b.time_zone AS date)
    FROM metric_snapshots s JOIN posts p ON p.id = s.post_id
    JOIN brands b ON b.id = p.brand_id
    UNION ALL
    SELECT o.brand_id, CAST(o.ordered_at AT TIME ZONE b.time_zone AS date)
    FROM orders o JOIN brands b ON b.id = o.brand_id
    UNION ALL
    SELECT p.brand_id, CAST(p.published_at AT TIME ZONE b.time_zone AS date)
    FROM posts p JOIN brands b ON b.id = p.brand_id
    WHERE p.state = 'published' AND p.published_at IS NOT NULL
    UNION ALL
    SELECT m.brand_id, CAST(m.posted_at AT TIME ZONE b.time_zone AS date)
    FROM mentions m JOIN brands b ON b.id = m.brand_id
    UNION ALL
    SELECT c.brand_id, CAST(c.occurred_at AT TIME ZONE b.time_zone AS date)
    FROM cost_ledger c JOIN brands b ON b.id = c.brand_id
    UNION ALL
    SELECT brand_id, local_day FROM account_snapshots
) AS every_day;

-- A snapshot's growth, worked out where it is stored so that every writer gets it.
-- The post's row lock serialises two runs storing the same post (Cloud Scheduler
-- may overlap them): the second waits, then reads the first's row as the previous
-- one. A snapshot not newer than the post's newest is ignored (it would change the
-- growth already credited to a later one); clicks X withholds after 30 days carry
-- the last known figure forward, so a day never shows clicks taken back.
CREATE FUNCTION metric_snapshot_growth() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    previous metric_snapshots;
BEGIN
    PERFORM 1 FROM posts WHERE id = NEW.post_id FOR NO KEY UPDATE;
    SELECT * INTO previous FROM metric_snapshots
    WHERE post_id = NEW.post_id ORDER BY captured_at DESC LIMIT 1;
    IF FOUND AND previous.captured_at >= NEW.captured_at THEN
        RETURN NULL;
    END IF;

    NEW.link_clicks := COALESCE(NEW.link_clicks, previous.link_clicks);
    NEW.profile_clicks := COALESCE(NEW.profile_clicks, previous.profile_clicks);
    NEW.impressions_growth := NEW.impressions - COALESCE(previous.impressions, 0);
    NEW.engagements_growth :=
        (NEW.likes + NEW.reposts + NEW.replies + NEW.quotes + NEW.bookmarks)
        - COALESCE(previous.likes + previous.reposts + previous.replies
                   + previous.quotes + previous.bookmarks, 0);
    NEW.link_clicks_growth :=
        COALESCE(NEW.link_clicks, 0) - COALESCE(previous.link_clicks, 0);
    RETURN NEW;
END
$$;
CREATE TRIGGER metric_snapshots_growth BEFORE INSERT ON metric_snapshots
    FOR EACH ROW EXECUTE FUNCTION metric_snapshot_growth();

-- The marks. Inserts are marked once per statement (a poll or an import stores many
-- rows at once); updates only when a counted field changed.
CREATE FUNCTION mark_snapshot_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT p.brand_id, CAST(n.captured_at AT TIME ZONE b.time_zone AS date)
    FROM added n JOIN posts p ON p.id = n.post_id JOIN brands b ON b.id = p.brand_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER metric_snapshots_mark AFTER INSERT ON metric_snapshots
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION mark_snapshot_days();

CREATE FUNCTION mark_order_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT n.brand_id, CAST(n.ordered_at AT TIME ZONE b.time_zone AS date)
    FROM added n JOIN brands b ON b.id = n.brand_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_mark AFTER INSERT ON orders
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION mark_order_days();

CREATE FUNCTION mark_mention_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT n.brand_id, CAST(n.posted_at AT TIME ZONE b.time_zone AS date)
    FROM added n JOIN brands b ON b.id = n.brand_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER mentions_mark AFTER INSERT ON mentions
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION mark_mention_days();

CREATE FUNCTION mark_spend_days_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT n.brand_id, CAST(n.occurred_at AT TIME ZONE b.time_zone AS date)
    FROM added n JOIN brands b ON b.id = n.brand_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER cost_ledger_mark_added AFTER INSERT ON cost_ledger
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION mark_spend_days_added();

-- A released reservation (costs.py) takes its price back out of the day.
CREATE FUNCTION mark_spend_days_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT o.brand_id, CAST(o.occurred_at AT TIME ZONE b.time_zone AS date)
    FROM removed o JOIN brands b ON b.id = o.brand_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER cost_ledger_mark_removed AFTER DELETE ON cost_ledger
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION mark_spend_days_removed();

CREATE FUNCTION mark_follower_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A day's follower change reads the day before, so a count stored after the
    -- next day's (a backfill) moves that day too.
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT brand_id, day FROM (
        SELECT brand_id, local_day AS day FROM added
        UNION ALL
        SELECT a.brand_id, a.local_day + 1 FROM added a
        WHERE EXISTS (
            SELECT 1 FROM account_snapshots n
            WHERE n.brand_id = a.brand_id AND n.local_day = a.local_day + 1
        )
    ) AS both_days;
    RETURN NULL;
END
$$;
CREATE TRIGGER account_snapshots_mark AFTER INSERT ON account_snapshots
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION mark_follower_days();

-- One changed row: the brand's local day of `old_at` and of `new_at` (either NULL).
-- PL/pgSQL, whose plans a session keeps: a SQL function called per row was planned
-- on every call (0.6 ms a row).
CREATE FUNCTION mark_changed_row(brand uuid, old_at timestamptz, new_at timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
BEGIN
    SELECT time_zone INTO zone FROM brands WHERE id = brand;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO kpi_marks (brand_id, day)
    SELECT DISTINCT brand, CAST(at AT TIME ZONE zone AS date)
    FROM unnest(ARRAY[old_at, new_at]) AS at
    WHERE at IS NOT NULL;
END
$$;

-- Attribution sets post_id; a post deleted sets it back to NULL.
CREATE FUNCTION mark_changed_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mark_changed_row(NEW.brand_id, OLD.ordered_at, NEW.ordered_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_mark_changed AFTER UPDATE ON orders
    FOR EACH ROW
    WHEN (OLD.post_id IS DISTINCT FROM NEW.post_id
          OR OLD.ordered_at IS DISTINCT FROM NEW.ordered_at
          OR OLD.total_price IS DISTINCT FROM NEW.total_price)
    EXECUTE FUNCTION mark_changed_order();

-- A post counts on the local day it was published, while it is published.
CREATE FUNCTION mark_changed_post() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM mark_changed_row(NEW.brand_id, NULL, NEW.published_at);
    ELSE
        PERFORM mark_changed_row(NEW.brand_id, OLD.published_at, NEW.published_at);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER posts_mark_published AFTER INSERT ON posts
    FOR EACH ROW WHEN (NEW.state = 'published')
    EXECUTE FUNCTION mark_changed_post();
CREATE TRIGGER posts_mark_changed AFTER UPDATE ON posts
    FOR EACH ROW
    WHEN ((OLD.state = 'published' OR NEW.state = 'published')
          AND (OLD.state IS DISTINCT FROM NEW.state
               OR OLD.published_at IS DISTINCT FROM NEW.published_at))
    EXECUTE FUNCTION mark_changed_post();

-- Scoring sets a mention's sentiment after it was stored.
CREATE FUNCTION mark_changed_mention() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mark_changed_row(NEW.brand_id, OLD.posted_at, NEW.posted_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER mentions_mark_changed AFTER UPDATE ON mentions
    FOR EACH ROW
    WHEN (OLD.sentiment IS DISTINCT FROM NEW.sentiment
          OR OLD.posted_at IS DISTINCT FROM NEW.posted_at)
    EXECUTE FUNCTION mark_changed_mention();

CREATE FUNCTION mark_changed_followers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (brand_id, day)
    SELECT NEW.brand_id, NEW.local_day
    UNION ALL
    SELECT brand_id, local_day FROM account_snapshots
    WHERE brand_id = NEW.brand_id AND local_day = NEW.local_day + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER account_snapshots_mark_changed AFTER UPDATE ON account_snapshots
    FOR EACH ROW WHEN (OLD.followers IS DISTINCT FROM NEW.followers)
    EXECUTE FUNCTION mark_changed_followers();
