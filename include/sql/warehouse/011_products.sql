-- Products (issue 11): each alert is routed to its product's on-call (medallion.alerts.recipients).
-- Idempotent: applied by medallion.warehouse.migrate.

-- the product an alert belongs to (null: the whole bundle, e.g. the freshness DAG itself); its
-- recipients are resolved when it is sent, so a changed Variable applies to alerts still waiting
alter table ops.alert_outbox_messages add column if not exists product text;
