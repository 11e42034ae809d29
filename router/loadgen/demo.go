package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"time"
)

// Demo is the dev mode's workload: a few namespaces whose pods write realistic logs (access
// logs, JSON application logs, errors on stderr, the odd very long line) and are rotated the way
// kubelet does when a file passes RotateBytes.
type Demo struct {
	Node        *Node
	Namespaces  []string
	PodsPerNS   int
	LinesPerSec int   // per container
	RotateBytes int64 // rotate a container's file past this size (kubelet's containerLogMaxSize)
	KeepRotated int   // rotated files kept (kubelet's containerLogMaxFiles - 1)

	conts []*Container
}

// Start creates the containers.
func (d *Demo) Start() error {
	apps := []string{"web", "api", "worker"}
	for _, ns := range d.Namespaces {
		for p := range d.PodsPerNS {
			app := apps[p%len(apps)]
			pod := fmt.Sprintf("%s-%s-%05x", app, randHex(5), rand.IntN(1<<20))
			c, err := d.Node.AddContainer(ns, pod, app, CRI)
			if err != nil {
				return err
			}
			d.conts = append(d.conts, c)
		}
	}
	return nil
}

// Containers are the demo's containers.
func (d *Demo) Containers() []*Container { return d.conts }

// Run writes until ctx ends.
func (d *Demo) Run(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	seq := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		per := max(1, d.LinesPerSec/10)
		for _, c := range d.conts {
			for range per {
				seq++
				stream, msg := demoLine(c, seq)
				if err := c.Write(time.Now(), stream, msg); err != nil {
					return err
				}
			}
			if fi, err := os.Stat(c.Path()); err == nil && d.RotateBytes > 0 && fi.Size() > d.RotateBytes {
				if _, err := c.RotateRename(); err != nil {
					return err
				}
				if old := c.Rotated(); len(old) > d.KeepRotated {
					sort.Strings(old)
					for _, p := range old[:len(old)-d.KeepRotated] {
						os.Remove(p)
					}
				}
			}
		}
	}
}

var paths = []string{"/", "/api/v1/items", "/api/v1/items/42", "/cart", "/checkout", "/healthz", "/static/app.js"}

func demoLine(c *Container, seq int) (stream, msg string) {
	r := rand.IntN(100)
	switch {
	case r < 45:
		status := []int{200, 200, 200, 201, 304, 404, 500}[rand.IntN(7)]
		return "stdout", fmt.Sprintf(`10.0.%d.%d - - [%s] "GET %s HTTP/1.1" %d %d "-" "curl/8.5.0"`,
			rand.IntN(255), rand.IntN(255), time.Now().Format("02/Jan/2006:15:04:05 -0700"), paths[rand.IntN(len(paths))], status, rand.IntN(50000))
	case r < 85:
		lvl := []string{"debug", "info", "info", "info", "warn"}[rand.IntN(5)]
		return "stdout", fmt.Sprintf(`{"level":%q,"ts":%q,"msg":"handled request","app":%q,"seq":%d,"duration_ms":%d,"user":"u-%d"}`,
			lvl, time.Now().UTC().Format(time.RFC3339Nano), c.Name, seq, rand.IntN(900), rand.IntN(10000))
	case r < 98:
		return "stderr", fmt.Sprintf("ERROR %s: connection to db-%d.%s.svc:5432 refused (attempt %d)", c.Name, rand.IntN(3), c.Namespace, rand.IntN(5)+1)
	default:
		return "stdout", "payload dump: " + strings.Repeat("abcdefghij", 2000+rand.IntN(2000))
	}
}
