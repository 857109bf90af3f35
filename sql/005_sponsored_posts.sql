-- 005: sponsored posts and the disclosure tag they must carry.

-- The tag a brand's sponsored posts carry, e.g. #ad (what the FTC and the UK's ASA
-- expect a paid partnership to show up front).
ALTER TABLE brands ADD COLUMN disclosure_tag text NOT NULL DEFAULT '#ad';

ALTER TABLE posts ADD COLUMN sponsored boolean NOT NULL DEFAULT false;
