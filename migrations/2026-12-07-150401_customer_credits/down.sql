DROP TABLE agent_overrides;
DROP INDEX pending_invoice_items_one_off;
ALTER TABLE pending_invoice_items DROP COLUMN agent, DROP COLUMN kind;
DROP TABLE credit_notes;
DROP TABLE customer_balance_transactions;
DROP TABLE customer_balances;
