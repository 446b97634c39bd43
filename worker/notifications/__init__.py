"""Outbound notifications: channels (email, slack, webhook, sms), delivery of rows, notices."""
