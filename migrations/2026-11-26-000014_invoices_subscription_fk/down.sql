ALTER TABLE invoices DROP CONSTRAINT invoices_subscription_fk;
