-- Brands connect their X account with OAuth 2.0 (decision 0030): the refresh token
-- and the access token's expiry beside the (now sealed) access token, and the
-- flow's pending states.

-- x_access_token and x_refresh_token hold sealed values (token_vault.py) once the
-- key is configured; a plaintext one left from before is sealed at its first use
-- or by `python -m infra.seal_tokens`. NULL expiry: a token set by hand, which
-- never expires as far as cartcast knows and is never refreshed.
ALTER TABLE brands
    ADD COLUMN x_refresh_token text,
    ADD COLUMN x_token_expires_at timestamptz,
    ADD COLUMN x_token_scopes text;

-- One row per authorization started: the state's SHA-256 (the state itself is a
-- bearer secret for the callback), the PKCE verifier (sealed), the brand it is
-- bound to, and when it expires. `used_at` makes it single-use.
CREATE TABLE x_oauth_states (
    state_hash     text PRIMARY KEY,
    brand_id       uuid NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    code_verifier  text NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    CHECK (expires_at > created_at)
);

CREATE INDEX x_oauth_states_by_brand ON x_oauth_states (brand_id);
