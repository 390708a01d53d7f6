DROP TABLE subscription_discounts;
DROP TABLE retention_offer_outcomes;
DROP TABLE retention_offers;
DROP TABLE segment_settings;
DROP TABLE customer_notes;
DROP INDEX events_customer;
ALTER TABLE events DROP COLUMN customer_id;
