-- 010: what the X post-limit governor counts (every intent to send a post), the
-- shared X app's pause, each brand's own-app flag and monthly X budget, and cost
-- ledger rows that only reserve a post's price until X's answer confirms it.
ALTER TABLE brands ADD COLUMN x_own_app boolean NOT NULL DEFAULT false;
ALTER TABLE brands ADD COLUMN monthly_x_budget_usd numeric(12, 2)
    CHECK (monthly_x_budget_usd >= 0);

-- One row per post (or thread part) handed to X, written with its intent: the
-- sliding windows of X's post limits are counted from here (decision 0010).
CREATE TABLE x_post_intents (
    id        bigserial PRIMARY KEY,
    brand_id  uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    post_id   uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    part      integer,
    own_app   boolean NOT NULL,
    sent_at   timestamptz NOT NULL
);
CREATE INDEX x_post_intents_by_brand ON x_post_intents (brand_id, sent_at);
CREATE INDEX x_post_intents_on_shared_app ON x_post_intents (sent_at)
    WHERE NOT own_app;

-- The shared app (every brand without its own) waits here when its 24-hour
-- window is full; a brand with its own app waits on brands.x_posts_paused_until.
CREATE TABLE x_app_pauses (
    app                 text PRIMARY KEY CHECK (app = 'shared'),
    posts_paused_until  timestamptz NOT NULL
);

-- true while a post's price is held for a send whose answer is not known yet.
ALTER TABLE cost_ledger ADD COLUMN reserved boolean NOT NULL DEFAULT false;
