-- 041: a reply that was out with the publisher (or unconfirmed, or failed) when
-- its mention's author asked for their data to be removed is marked, and is
-- cancelled instead of queued again if it comes back unsent (author_data.py,
-- decision 0043).

-- Why the post must not be queued again; NULL for every post but such replies.
ALTER TABLE posts ADD COLUMN cancel_if_unsent text;

-- Every path that puts a post back in a queue (a lease that ran out before the
-- intent, X failing before it took the post, a disconnection holding it, the
-- reconciler or a person finding it absent, a retry asked by hand) writes one of
-- these states: a marked post becomes cancelled instead, with its reason. A post
-- that reached X becomes published or unconfirmed, which this leaves alone, so
-- nothing sent is taken back and nothing is sent twice.
CREATE FUNCTION cancel_marked_post_coming_back() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.state := 'cancelled';
    NEW.failure_reason := NEW.cancel_if_unsent;
    NEW.lease_until := NULL;
    RETURN NEW;
END;
$$;
CREATE TRIGGER posts_cancel_marked_coming_back BEFORE UPDATE OF state ON posts
    FOR EACH ROW
    WHEN (NEW.cancel_if_unsent IS NOT NULL
          AND NEW.state IN ('needs_approval', 'approved', 'scheduled', 'held'))
    EXECUTE FUNCTION cancel_marked_post_coming_back();
