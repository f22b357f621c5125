-- SMS replies: a text from a phone number answers one of the questions open to it, found
-- by the number among approvers who have not answered.
CREATE INDEX approvers_open_by_recipient ON approvers (recipient, channel) WHERE vote_at IS NULL;
