DROP TABLE charge_intents;
