DROP TABLE cancellation_requests;
DROP TABLE ticket_messages;
DROP TABLE support_tickets;
DROP TABLE scheduled_changes;
DROP TABLE subscriptions;
