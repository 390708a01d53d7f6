-- Checks the invoices written before 000014 (see there). A row naming a subscription
-- that does not exist fails this migration; nothing the service writes does.
ALTER TABLE invoices VALIDATE CONSTRAINT invoices_subscription_fk;
