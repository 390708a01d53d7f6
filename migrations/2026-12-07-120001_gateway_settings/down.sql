DROP TABLE gateway_disputes;
DROP TABLE gateway_events;
DROP TABLE gateway_customers;
DROP TABLE gateway_settings;
