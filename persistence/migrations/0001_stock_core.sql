-- The stock core: snapshot, audit log, idempotency records.

CREATE TABLE stock (
    sku         text        PRIMARY KEY,
    available   bigint      NOT NULL CHECK (available >= 0),
    version     bigint      NOT NULL CHECK (version >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The audit log is the truth (invariant 5): one row per change, never updated or deleted.
CREATE TABLE stock_events (
    sku             text        NOT NULL,
    version         bigint      NOT NULL,
    delta           bigint      NOT NULL,
    available_after bigint      NOT NULL CHECK (available_after >= 0),
    kind            text        NOT NULL,
    order_id        text,
    channel         text,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, version)
);

CREATE FUNCTION stock_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stock_events is append-only' USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER stock_events_no_update BEFORE UPDATE OR DELETE ON stock_events
    FOR EACH ROW EXECUTE FUNCTION stock_events_append_only();

CREATE TABLE orders (
    channel      text        NOT NULL,
    order_id     text        NOT NULL,
    body_hash    text        NOT NULL,
    status       text        NOT NULL,
    http_status  integer     NOT NULL,
    response     text        NOT NULL,  -- the first answer, replayed verbatim
    lines        text        NOT NULL,
    cancel_response text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, order_id)
);

-- One round trip commits a whole group: stock rows fenced by the version the
-- owner last saw, the events, new order records and order status changes.
-- Conflicts with existing order records are returned before anything is
-- written, so the caller can answer them and retry the rest.
CREATE FUNCTION invsync_commit_batch(
    s_sku text[], s_expected bigint[], s_available bigint[], s_version bigint[],
    e_sku text[], e_version bigint[], e_delta bigint[], e_after bigint[], e_kind text[],
    e_order_id text[], e_channel text[], e_reason text[],
    o_channel text[], o_order_id text[], o_hash text[], o_status text[], o_http integer[],
    o_response text[], o_lines text[],
    u_channel text[], u_order_id text[], u_from text[], u_status text[], u_response text[]
) RETURNS TABLE (channel text, order_id text, body_hash text, status text, http_status integer, response text)
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    expected_new bigint;
BEGIN
    RETURN QUERY
        SELECT o.channel, o.order_id, o.body_hash, o.status, o.http_status, o.response
        FROM orders o
        JOIN unnest(o_channel, o_order_id) AS i(channel, order_id)
          ON o.channel = i.channel AND o.order_id = i.order_id
        UNION ALL
        SELECT o.channel, o.order_id, o.body_hash, o.status, o.http_status, coalesce(o.cancel_response, o.response)
        FROM orders o
        JOIN unnest(u_channel, u_order_id, u_from) AS u(channel, order_id, from_status)
          ON o.channel = u.channel AND o.order_id = u.order_id
        WHERE o.status <> u.from_status;
    IF FOUND THEN
        RETURN;
    END IF;

    UPDATE stock s SET available = i.available, version = i.version, updated_at = now()
    FROM unnest(s_sku, s_expected, s_available, s_version) AS i(sku, expected, available, version)
    WHERE s.sku = i.sku AND s.version = i.expected AND i.expected > 0;
    GET DIAGNOSTICS n = ROW_COUNT;
    SELECT count(*) INTO expected_new FROM unnest(s_expected) AS x(e) WHERE e > 0;
    IF n <> expected_new THEN
        RAISE EXCEPTION 'stock version fence: % of % rows matched', n, expected_new
            USING ERRCODE = 'serialization_failure';
    END IF;

    INSERT INTO stock (sku, available, version)
    SELECT i.sku, i.available, i.version
    FROM unnest(s_sku, s_expected, s_available, s_version) AS i(sku, expected, available, version)
    WHERE i.expected = 0;

    INSERT INTO stock_events (sku, version, delta, available_after, kind, order_id, channel, reason)
    SELECT * FROM unnest(e_sku, e_version, e_delta, e_after, e_kind, e_order_id, e_channel, e_reason);

    INSERT INTO orders (channel, order_id, body_hash, status, http_status, response, lines)
    SELECT * FROM unnest(o_channel, o_order_id, o_hash, o_status, o_http, o_response, o_lines);

    UPDATE orders o SET status = u.status, cancel_response = u.response, updated_at = now()
    FROM unnest(u_channel, u_order_id, u_from, u_status, u_response)
         AS u(channel, order_id, from_status, status, response)
    WHERE o.channel = u.channel AND o.order_id = u.order_id AND o.status = u.from_status;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> coalesce(array_length(u_channel, 1), 0) THEN
        RAISE EXCEPTION 'order status fence: % of % rows matched', n, array_length(u_channel, 1)
            USING ERRCODE = 'serialization_failure';
    END IF;
END $$;
