DROP TABLE cors_settings;
