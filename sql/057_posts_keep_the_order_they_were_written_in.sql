-- 057: posts keep the order they were written in, so the drafts of one caption
-- request, which share their created_at, take the slots in the request's order.

-- A tie on created_at fell to the posts' random ids: two runs of the same request
-- scheduled its drafts differently (posts.SELECT_APPROVED_UNSCHEDULED). The value
-- only orders; posts written before this file are numbered in no set order.
ALTER TABLE posts ADD COLUMN written_order bigint GENERATED ALWAYS AS IDENTITY;
