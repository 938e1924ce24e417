-- 016: a counter of the changes that alter admission answers.
--
-- A responder process in lease mode keeps what a key and model were last
-- admitted with (project, limits, prices) and admits from it without a
-- round trip.  Rather than asking again for each of them every second, it
-- reads this one counter a few times a second and drops every answer it
-- got before the counter moved.  Every change to what mg_admit_batch reads
-- of projects, api_keys, models and upstream_models moves it, in the
-- changing transaction, so that a process that reads the new value can
-- only get answers made after the change.  Writes that change nothing an
-- answer holds (a catalog sync that finds the same prices; a key's name)
-- leave it.  The triggers that move it are in sql/functions/lease.sql.
CREATE TABLE admission_changes (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    n          bigint NOT NULL DEFAULT 0
);
INSERT INTO admission_changes DEFAULT VALUES;
