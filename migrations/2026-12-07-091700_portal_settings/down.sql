DROP TABLE portal_settings;
