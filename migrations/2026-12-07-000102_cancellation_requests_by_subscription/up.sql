-- Cancellation requests are listed by subscription too (GET /v1/cancellation_requests?subscription_id=).
CREATE INDEX cancellation_requests_subscription ON cancellation_requests (merchant_id, subscription_id, id);
