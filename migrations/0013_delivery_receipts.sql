-- A reply's delivery state may also be `delivered` or `read`, from the
-- channel's receipts (WhatsApp's statuses), after `sent`.
ALTER TABLE ticket_messages DROP CONSTRAINT IF EXISTS ticket_messages_delivery_state_check;
ALTER TABLE ticket_messages ADD CONSTRAINT ticket_messages_delivery_state_check
    CHECK (delivery_state IN ('pending', 'sent', 'delivered', 'read', 'failed'));
