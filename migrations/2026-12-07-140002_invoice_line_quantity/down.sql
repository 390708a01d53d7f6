ALTER TABLE invoice_lines DROP COLUMN quantity;
