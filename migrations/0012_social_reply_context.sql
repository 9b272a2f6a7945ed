-- What a network needs, besides a message's platform id, to answer it
-- (Bluesky: the post's cid and its thread's root), carried by
-- social.message_received (`reply_context`, optional) and kept with the
-- message by the conversations projection. NULL for the networks that need
-- nothing more.
ALTER TABLE social_messages ADD COLUMN reply_context jsonb;
