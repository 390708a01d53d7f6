-- The GIN index on customers.tags served only the tag filter, which reads customer_tags
-- since the previous migration; every write of a customer's row no longer updates it.
-- In a migration of its own: the drop takes an ACCESS EXCLUSIVE lock for an instant and
-- holds no other lock while it waits for it, so it cannot deadlock with requests (inside
-- the backfill's transaction it upgraded a SHARE lock and could).
DROP INDEX IF EXISTS customers_tags;
