-- Idempotency keys carry their merchant as a column, like every other merchant-owned
-- table, so the table can be distributed by merchant (Citus) and the merchant's purge and
-- erasure find its keys by index instead of by a prefix of `scope`.
ALTER TABLE idempotency_keys ADD COLUMN merchant_id uuid;

-- Keys already stored (they live 24 hours) keep replaying: their scope starts with the
-- merchant's TypeID (`mer_` and 26 characters of Crockford base32 holding the UUID's 128
-- bits after two zero bits), decoded here.
UPDATE idempotency_keys k SET merchant_id = decoded.id
  FROM (
    SELECT scope,
           (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' ||
            substr(h, 17, 4) || '-' || substr(h, 21))::uuid AS id
      FROM (
        SELECT scope,
               string_agg(to_hex(substring(bits FROM 3 + 4 * n FOR 4)::bit(4)::int), ''
                          ORDER BY n) AS h
          FROM (
            SELECT s.scope,
                   string_agg((strpos('0123456789abcdefghjkmnpqrstvwxyz', c) - 1)::bit(5)::text,
                              '' ORDER BY i)::varbit AS bits
              FROM (SELECT DISTINCT scope FROM idempotency_keys) s,
                   regexp_split_to_table(substr(split_part(s.scope, '/', 1), 5), '')
                     WITH ORDINALITY AS t(c, i)
             GROUP BY s.scope
          ) b, generate_series(0, 31) AS n
         GROUP BY scope
      ) hex
  ) decoded
 WHERE k.scope = decoded.scope;
-- A scope that names no merchant (none is ever stored) cannot be kept.
DELETE FROM idempotency_keys WHERE merchant_id IS NULL
   OR NOT EXISTS (SELECT 1 FROM merchants m WHERE m.id = merchant_id);

ALTER TABLE idempotency_keys ALTER COLUMN merchant_id SET NOT NULL,
  DROP CONSTRAINT idempotency_keys_pkey,
  ADD PRIMARY KEY (merchant_id, scope, idempotency_key),
  ADD FOREIGN KEY (merchant_id) REFERENCES merchants (id);
