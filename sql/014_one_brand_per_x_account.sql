-- 014: an X account belongs to one brand. X's post limits and the reconciler's
-- timeline reads are per account; two brands on one account would each count half
-- of its posts and read each other's as their own.
CREATE UNIQUE INDEX brands_x_user_id_key ON brands (x_user_id)
    WHERE x_user_id IS NOT NULL;
