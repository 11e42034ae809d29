package router

import (
	"sync"

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

// Attach makes the collector's shutdown wait for done before it flushes and closes the
// producer: a node source calls done once it has stopped producing and saved its checkpoint,
// so that its last records are acknowledged rather than failed by the close. Call it before Run.
func (c *Collector) Attach() (done func()) {
	c.wg.Add(1)
	var once sync.Once
	return func() { once.Do(c.wg.Done) }
}
