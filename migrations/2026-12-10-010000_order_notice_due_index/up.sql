-- The claim of `order.upcoming` (tenure_store::repo::renewals::claim_due_order_notice)
-- reads only renewals whose notice was not handled: each is marked once handled, those
-- that do not ship included (marked without an event), so a round with nothing due reads
-- no row however many subscriptions renew within the notice window. The build blocks
-- writes of subscriptions while it scans them (docs/scaling.md, "Upgrading").
CREATE INDEX subscriptions_order_notice_due ON subscriptions (current_period_end)
    WHERE status IN ('trialing', 'active', 'past_due')
      AND order_notice_for IS DISTINCT FROM current_period_end
      AND test_clock_id IS NULL;
