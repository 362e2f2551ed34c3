package server

import (
	"context"
	"time"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/webhook"
)

// openWebhooks starts the sender of Config.Webhooks (nil when none).
func (n *Node) openWebhooks(cfg Config) error {
	if len(cfg.Webhooks) == 0 {
		return nil
	}
	s, err := webhook.New(webhook.Config{Endpoints: cfg.Webhooks, Record: n.recordDelivery})
	if err != nil {
		return err
	}
	n.webhooks = s
	return nil
}

// recordDelivery records the outcome of a webhook delivery in the audit
// log (by endpoint name: the URL may carry a token).
func (n *Node) recordDelivery(d webhook.Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "webhook.delivery", Actor: "ward", Data: jsonData(d)}); err != nil {
		n.cfg.Logger.Error("recording a webhook delivery failed", "webhook", d.Endpoint, "delivery", d.ID, "err", err)
	}
	if !d.Delivered {
		n.cfg.Logger.Warn("webhook delivery failed", "webhook", d.Endpoint, "event", d.Event, "delivery", d.ID, "attempts", d.Attempts, "err", d.Error)
	}
}

// notify sends event to the webhooks that take it, if any.
func (n *Node) notify(event string, data any) { n.webhooks.Send(event, data) }

// closeWebhooks lets deliveries in progress finish and be recorded, for a
// few seconds, before the audit log closes.
func (n *Node) closeWebhooks() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.webhooks.Close(ctx); err != nil {
		n.cfg.Logger.Warn("webhook deliveries still in progress at shutdown were abandoned", "err", err)
	}
}
