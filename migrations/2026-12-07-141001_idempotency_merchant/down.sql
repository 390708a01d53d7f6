ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey,
  ADD PRIMARY KEY (scope, idempotency_key);
ALTER TABLE idempotency_keys DROP COLUMN merchant_id;
