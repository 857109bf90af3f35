-- 054: a tick's claim records whether the run that made it holds the run's lock,
-- so a free lock is read as that run's death only when it did (decision 0082).

-- False for claims made before, and by the older code while this deploys: their
-- runs are taken over by their age alone, never beside a live one.
ALTER TABLE handled_events ADD COLUMN run_holds_lock boolean NOT NULL DEFAULT false;
