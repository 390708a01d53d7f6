-- How many units a line bills: a plan line the subscription's quantity, any other 1.
ALTER TABLE invoice_lines
    ADD COLUMN quantity integer NOT NULL DEFAULT 1 CHECK (quantity BETWEEN 1 AND 10000);
