DROP TABLE expiry_notification;
