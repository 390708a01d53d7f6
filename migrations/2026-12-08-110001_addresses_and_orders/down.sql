DROP TABLE orders;
ALTER TABLE subscriptions DROP COLUMN shipping_address_id;
DROP TABLE customer_addresses;
