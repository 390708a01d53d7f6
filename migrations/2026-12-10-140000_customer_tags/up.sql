-- Customers by tag in list order (issue 22; docs/scaling.md, "Customers by tag"). The
-- list is newest first with keyset pagination (ORDER BY id DESC LIMIT n); a GIN index on
-- `customers.tags` cannot return rows in that order, so a rare tag was found by walking
-- the primary key backwards and testing every customer (52 ms for a tag of 0.1 % at
-- 1,000,000 customers). One row per (customer, tag) with a btree in (merchant, tag,
-- customer) order gives a tag's customers newest first from an index range scan, at a
-- cost of the page's size whatever the tag's share.
--
-- `customers.tags` stays the one source of truth: this table is derived from it, like an
-- index, by the triggers below in the transaction of each change, whichever path writes
-- the row. A load with the triggers off (session_replication_role = replica, as
-- bench/run.sh does) calls tenure_customer_tags_rebuild afterwards.

-- No customer changes while the table is filled from the customers kept so far.
LOCK TABLE customers IN SHARE MODE;

CREATE TABLE customer_tags (
    merchant_id  uuid NOT NULL,
    tag          text NOT NULL,
    customer_id  uuid NOT NULL,
    PRIMARY KEY (merchant_id, tag, customer_id)
);

CREATE FUNCTION tenure_customer_tags_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO customer_tags (merchant_id, tag, customer_id)
        SELECT NEW.merchant_id, t, NEW.id FROM unnest(NEW.tags) AS t
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM customer_tags
         WHERE merchant_id = OLD.merchant_id AND tag = ANY (OLD.tags) AND customer_id = OLD.id;
    ELSIF OLD.merchant_id = NEW.merchant_id AND OLD.id = NEW.id THEN
        -- Only the tags that went or came: each one a primary-key probe.
        DELETE FROM customer_tags
         WHERE merchant_id = OLD.merchant_id AND tag = ANY (OLD.tags) AND customer_id = OLD.id
           AND tag <> ALL (NEW.tags);
        INSERT INTO customer_tags (merchant_id, tag, customer_id)
        SELECT NEW.merchant_id, t, NEW.id FROM unnest(NEW.tags) AS t
         WHERE t <> ALL (OLD.tags)
        ON CONFLICT DO NOTHING;
    ELSE
        -- The row's key changed (nothing in Tenure does this): move all its tags.
        DELETE FROM customer_tags
         WHERE merchant_id = OLD.merchant_id AND tag = ANY (OLD.tags) AND customer_id = OLD.id;
        INSERT INTO customer_tags (merchant_id, tag, customer_id)
        SELECT NEW.merchant_id, t, NEW.id FROM unnest(NEW.tags) AS t
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customer_tags_insert AFTER INSERT ON customers
    FOR EACH ROW WHEN (cardinality(NEW.tags) > 0) EXECUTE FUNCTION tenure_customer_tags_sync();
-- The store writes the whole row on every update: the WHEN keeps the function out of the
-- updates that leave the tags as they were.
CREATE TRIGGER customer_tags_update AFTER UPDATE OF merchant_id, id, tags ON customers
    FOR EACH ROW
    WHEN (OLD.tags IS DISTINCT FROM NEW.tags OR OLD.id <> NEW.id
          OR OLD.merchant_id <> NEW.merchant_id)
    EXECUTE FUNCTION tenure_customer_tags_sync();
CREATE TRIGGER customer_tags_delete AFTER DELETE ON customers
    FOR EACH ROW WHEN (cardinality(OLD.tags) > 0) EXECUTE FUNCTION tenure_customer_tags_sync();

-- One merchant's rows made again from `customers.tags` (after a load that bypassed the
-- triggers); returns how many rows the merchant now has.
CREATE FUNCTION tenure_customer_tags_rebuild(p_merchant uuid) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    LOCK TABLE customers IN SHARE MODE;
    DELETE FROM customer_tags WHERE merchant_id = p_merchant;
    INSERT INTO customer_tags (merchant_id, tag, customer_id)
    SELECT DISTINCT c.merchant_id, t, c.id FROM customers c CROSS JOIN LATERAL unnest(c.tags) AS t
     WHERE c.merchant_id = p_merchant;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- The backfill, in the btree's order.
INSERT INTO customer_tags (merchant_id, tag, customer_id)
SELECT DISTINCT c.merchant_id, t, c.id FROM customers c CROSS JOIN LATERAL unnest(c.tags) AS t
 ORDER BY 1, 2, 3;

-- The GIN index that served the tag filter is dropped by the next migration, concurrently:
-- dropping it here would upgrade this transaction's SHARE lock on customers to ACCESS
-- EXCLUSIVE after the backfill, deadlocking with any request that read a customer and then
-- waited to write it.

ANALYZE customer_tags;
