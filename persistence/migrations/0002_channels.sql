-- Channels: where stock is pushed, what each channel last confirmed, what keeps failing.

CREATE TABLE channels (
    id          text        PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('webhook', 'shopify', 'woocommerce')),
    config      jsonb       NOT NULL,  -- holds credentials: never returned by the API, never logged
    rate_per_second double precision CHECK (rate_per_second > 0),
    rate_burst  integer     CHECK (rate_burst >= 1),
    buffer      integer     NOT NULL DEFAULT 0 CHECK (buffer >= 0),
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- SKU -> the channel's own id (Shopify inventory item id, WooCommerce product id).
CREATE TABLE channel_listings (
    channel_id  text NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    sku         text NOT NULL,
    external_id text NOT NULL,
    PRIMARY KEY (channel_id, sku)
);

-- What each channel last confirmed per SKU, and the stock version it came from.
-- Written only forward: a row never goes back to a lower version.
CREATE TABLE channel_listing_state (
    channel_id   text        NOT NULL,
    sku          text        NOT NULL,
    quantity     bigint      NOT NULL,
    version      bigint      NOT NULL,
    confirmed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, sku)
);

-- The newest failed delivery per (channel, SKU); retried with the current quantity.
CREATE TABLE channel_dead_letters (
    id              bigserial   PRIMARY KEY,
    channel_id      text        NOT NULL,
    sku             text        NOT NULL,
    version         bigint      NOT NULL,
    quantity        bigint      NOT NULL,
    error           text        NOT NULL,
    attempts        integer     NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel_id, sku)
);

-- Whether the channel side stopped cleanly last time. After a crash a push may have
-- reached a channel without its confirmation being stored, so everything is resent.
CREATE TABLE channel_sync_runs (
    id             integer     PRIMARY KEY CHECK (id = 1),
    clean_shutdown boolean     NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
