DROP TABLE agent_overrides;
DROP INDEX pending_invoice_items_one_off;
ALTER TABLE pending_invoice_items DROP COLUMN agent, DROP COLUMN kind;
ALTER TABLE invoice_lines
    DROP CONSTRAINT invoice_lines_kind_check,
    ADD CONSTRAINT invoice_lines_kind_check CHECK (kind IN ('plan', 'proration', 'discount'));
DROP TABLE credit_notes;
DROP TABLE customer_balance_transactions;
DROP TABLE customer_balances;
