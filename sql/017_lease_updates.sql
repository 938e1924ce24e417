-- 017: lease rows updated in place.
--
-- Every settlement batch, refill and renewal updates its leases' spend,
-- seq or renewed_at.  An index on renewed_at made each of those updates
-- write a new entry in every index of the table instead of a heap-only
-- update: a table of a few hundred live rows carried tens of thousands of
-- dead index entries, which settlement's lookups walked.  The reaper, the
-- one reader of renewed_at, reads the live leases without it (there are
-- a few per project), and room left in each page keeps an updated row in
-- its page.
DROP INDEX IF EXISTS leases_renewed_idx;
ALTER TABLE leases SET (fillfactor = 50);
