-- SMS replies and delivery receipts. A text from a phone number answers one of the
-- questions open to it, found by the number among approvers who have not answered.
CREATE INDEX approvers_open_by_recipient ON approvers (recipient, channel) WHERE vote_at IS NULL;

-- The provider's id of a sent message (Twilio's MessageSid), by which its later status
-- reports find the delivery.
ALTER TABLE deliveries ADD COLUMN provider_ref TEXT;
CREATE INDEX deliveries_by_provider_ref ON deliveries (provider_ref) WHERE provider_ref IS NOT NULL;
