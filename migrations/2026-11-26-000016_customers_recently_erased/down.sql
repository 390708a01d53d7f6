DROP INDEX customers_erased;
