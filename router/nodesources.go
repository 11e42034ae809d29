package router

import (
	"github.com/logrouter/logrouter/router/budget"
	"github.com/logrouter/logrouter/router/sink"
)

// Node sources (router/journal) share the collector's one producer and its one byte budget,
// in which each is one more participant of the fair share.

// Sink is the collector's producer.
func (c *Collector) Sink() *sink.Sink { return c.sink }

// Budget is the collector's byte budget.
func (c *Collector) Budget() *budget.Budget { return c.budget }

// Topic is namespace's topic under the collector's --topic-template (without namespace labels).
func (c *Collector) Topic(namespace string) (string, error) { return c.tmpl.Render(namespace, nil) }
