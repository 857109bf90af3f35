-- 056: console sessions that were signed out, kept until they would have expired,
-- so a copy of a signed-out cookie is refused on the server (decision 0089).

-- One signed-out session: the SHA-256 of the session id its cookie carries (the
-- random nonce every console cookie has held since the console began), and the
-- instant its cookie expires. Past that the cookie is refused for its age alone,
-- so the row can go: the next sign-out and each rollup_kpis tick delete such rows.
-- No brand is named: a row holds nothing of one, and a brand's sessions end with
-- its keys.
CREATE TABLE console_sessions_ended (
    session_hash  text PRIMARY KEY CHECK (session_hash ~ '^[0-9a-f]{64}$'),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_ended_by_expiry ON console_sessions_ended (expires_at);
