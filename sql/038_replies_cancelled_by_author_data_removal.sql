-- 038: a removal of an author's data also cancels the brand's replies to that
-- author's mentions that had not gone to X yet, and its record counts them
-- (author_data.py, decision 0039).

ALTER TABLE author_data_removals
    ADD COLUMN replies_cancelled integer NOT NULL DEFAULT 0
        CHECK (replies_cancelled >= 0);
