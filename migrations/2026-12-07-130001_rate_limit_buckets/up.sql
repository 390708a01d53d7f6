-- Rate-limit buckets shared by every `tenure serve` process (docs/hardening.md): one row
-- per bucket key (`m:<merchant>`, `c:<merchant>/<customer>`, `ip:<address>`), holding the
-- GCRA's theoretical arrival time in microseconds of the database's clock, so processes
-- on machines whose clocks differ still agree. A bucket whose time has passed is full,
-- the same as no row, and is swept. UNLOGGED: no WAL per request, and a crash that
-- empties it only forgives the callers their recent requests.
CREATE UNLOGGED TABLE rate_limit_buckets (
    key      text PRIMARY KEY,
    tat_us   bigint NOT NULL,
    -- Whether the last request counted was let through (what the one upsert returns).
    allowed  boolean NOT NULL
);
