DROP INDEX invoices_created;
