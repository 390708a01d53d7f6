DROP TABLE stock_notice_recipients;
DROP TABLE stock_notices;
ALTER TABLE plans DROP COLUMN stock_expected_at, DROP COLUMN stock_status;
