DROP TABLE refund_intents;
