-- Coupons and promotion codes (issue #21 part B). A subscription discount now refers to
-- the coupon it was granted from (and the code redeemed, if any); a retention offer's
-- discount refers to an internal coupon made for it.
CREATE TABLE coupons (
    merchant_id                  uuid NOT NULL REFERENCES merchants (id),
    id                           uuid NOT NULL,
    name                         text NOT NULL,
    -- The domain's DiscountValue: {"percent": 20} or {"amount": {"amount": 500, "currency": "EUR"}}.
    value                        jsonb NOT NULL,
    -- The domain's CouponDuration: {"duration": "once" | "forever"} or
    -- {"duration": "repeating", "cycles": 3}.
    duration                     jsonb NOT NULL,
    max_redemptions              integer CHECK (max_redemptions >= 1),
    times_redeemed               integer NOT NULL DEFAULT 0 CHECK (times_redeemed >= 0),
    redeem_by                    timestamptz,
    applies_to_product_ids       text[] NOT NULL DEFAULT '{}',
    applies_to_plan_ids          text[] NOT NULL DEFAULT '{}',
    first_time_subscribers_only  boolean NOT NULL DEFAULT false,
    -- Made for one discount (a retention offer's): not listed, no codes.
    internal                     boolean NOT NULL DEFAULT false,
    metadata                     jsonb NOT NULL DEFAULT '{}',
    deleted_at                   timestamptz,
    created_at                   timestamptz NOT NULL,
    updated_at                   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    CHECK (max_redemptions IS NULL OR times_redeemed <= max_redemptions)
);
CREATE INDEX coupons_listed ON coupons (merchant_id, id) WHERE NOT internal;

CREATE TABLE promotion_codes (
    merchant_id                   uuid NOT NULL REFERENCES merchants (id),
    id                            uuid NOT NULL,
    coupon_id                     uuid NOT NULL,
    -- As the merchant wrote it; matched by normalized_code (upper case).
    code                          text NOT NULL,
    normalized_code               text NOT NULL,
    active                        boolean NOT NULL DEFAULT true,
    max_redemptions               integer CHECK (max_redemptions >= 1),
    max_redemptions_per_customer  integer CHECK (max_redemptions_per_customer >= 1),
    times_redeemed                integer NOT NULL DEFAULT 0 CHECK (times_redeemed >= 0),
    expires_at                    timestamptz,
    first_time_subscribers_only   boolean NOT NULL DEFAULT false,
    metadata                      jsonb NOT NULL DEFAULT '{}',
    created_at                    timestamptz NOT NULL,
    updated_at                    timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, coupon_id) REFERENCES coupons (merchant_id, id),
    CHECK (max_redemptions IS NULL OR times_redeemed <= max_redemptions)
);
-- A code names one active promotion code of its merchant, whatever its case.
CREATE UNIQUE INDEX promotion_codes_active_code
    ON promotion_codes (merchant_id, normalized_code) WHERE active;
CREATE INDEX promotion_codes_coupon ON promotion_codes (merchant_id, coupon_id);

ALTER TABLE subscription_discounts
    ADD COLUMN coupon_id uuid,
    ADD COLUMN promotion_code_id uuid,
    ADD COLUMN customer_id uuid,
    ADD COLUMN forever boolean NOT NULL DEFAULT false,
    -- How its invoice line reads (`Discount: …`); NULL reads from the value.
    ADD COLUMN description text;

-- Every discount granted so far came from a retention offer (or a test): each gets an
-- internal coupon of the same value and cycles, under the discount's own id.
INSERT INTO coupons (merchant_id, id, name, value, duration, times_redeemed, internal, created_at, updated_at)
SELECT merchant_id, id, 'Retention offer',
       CASE WHEN percent IS NOT NULL THEN jsonb_build_object('percent', percent)
            ELSE jsonb_build_object('amount',
                     jsonb_build_object('amount', amount, 'currency', currency)) END,
       CASE WHEN cycles = 1 THEN jsonb_build_object('duration', 'once')
            ELSE jsonb_build_object('duration', 'repeating', 'cycles', cycles) END,
       1, true, created_at, created_at
FROM subscription_discounts;
UPDATE subscription_discounts d SET coupon_id = d.id, customer_id = s.customer_id
FROM subscriptions s WHERE s.merchant_id = d.merchant_id AND s.id = d.subscription_id;

ALTER TABLE subscription_discounts
    ALTER COLUMN coupon_id SET NOT NULL,
    ALTER COLUMN customer_id SET NOT NULL,
    ADD FOREIGN KEY (merchant_id, coupon_id) REFERENCES coupons (merchant_id, id),
    ADD FOREIGN KEY (merchant_id, promotion_code_id) REFERENCES promotion_codes (merchant_id, id);
-- Per-customer limits count a customer's redemptions of a code.
CREATE INDEX subscription_discounts_code_customer
    ON subscription_discounts (merchant_id, promotion_code_id, customer_id)
    WHERE promotion_code_id IS NOT NULL;
