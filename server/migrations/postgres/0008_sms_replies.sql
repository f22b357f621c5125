-- SMS replies and delivery receipts. A text from a phone number answers one of the
-- questions open to it, found by the number among approvers who have not answered.
-- Newest first: an old question nobody answered stays in it, a pending one is recent.
CREATE INDEX approvers_open_by_recipient ON approvers (recipient, channel, pause_id)
    WHERE vote_at IS NULL;
-- A reply that comes too late is told what became of the number's last question.
CREATE INDEX approvers_by_recipient ON approvers (recipient, channel, pause_id);

-- The provider's id of a sent message (Twilio's MessageSid), by which its later status
-- reports find the delivery.
ALTER TABLE deliveries ADD COLUMN provider_ref TEXT;
CREATE INDEX deliveries_by_provider_ref ON deliveries (provider_ref) WHERE provider_ref IS NOT NULL;
