-- 004: one Gemini quota for every function instance: the calls made, and a pause
-- after Google answers 429.

CREATE TABLE gemini_calls (
    id          bigserial PRIMARY KEY,
    called_at   timestamptz NOT NULL,
    -- Google resets the daily quota at midnight Pacific time.
    quota_day   date NOT NULL
);
CREATE INDEX gemini_calls_recent ON gemini_calls (called_at);
CREATE INDEX gemini_calls_by_day ON gemini_calls (quota_day);

CREATE TABLE gemini_pause (
    id             smallint PRIMARY KEY CHECK (id = 1),
    paused_until   timestamptz NOT NULL,
    reason         text NOT NULL
);
