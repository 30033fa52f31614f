-- Report deliveries, users, sessions, API tokens, alerts and the notification
-- outbox. Written by the PostgreSQL port.
SELECT 1;
