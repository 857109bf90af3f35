-- 020: find a reply's mention by the reply's post. The trigger that reopens the
-- mention of a failed reply (018) and the ON DELETE SET NULL of posts both look
-- mentions up by reply_post_id, which read the whole table without this index.
CREATE INDEX mentions_by_reply_post ON mentions (reply_post_id)
    WHERE reply_post_id IS NOT NULL;
