package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicSpec is what the policy (and the namespace's retention annotation) asks of a
// namespace's topics. Zero values leave Kafka's defaults (or what the topic has).
type TopicSpec struct {
	Partitions int32
	Retention  time.Duration
}

// Provisioner creates and adjusts namespaces' topics through the Kafka admin API. Each
// namespace has its own lock, so that a namespace whose calls fail or hang never delays
// another's; topics already brought to a spec are not asked about again.
type Provisioner struct {
	adm     *kadm.Client
	timeout time.Duration

	mu sync.Mutex
	ns map[string]*nsTopics
}

type nsTopics struct {
	mu       sync.Mutex // serializes one namespace's Kafka calls
	done     map[string]TopicSpec
	failures int
}

// NewProvisioner returns a provisioner using adm; timeout bounds one Ensure.
func NewProvisioner(adm *kadm.Client, timeout time.Duration) *Provisioner {
	return &Provisioner{adm: adm, timeout: timeout, ns: map[string]*nsTopics{}}
}

func (p *Provisioner) state(ns string) *nsTopics {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.ns[ns]
	if s == nil {
		s = &nsTopics{done: map[string]TopicSpec{}}
		p.ns[ns] = s
	}
	return s
}

// Forget drops what is known of a namespace's topics (its next Ensure asks Kafka again).
func (p *Provisioner) Forget(ns string) {
	p.mu.Lock()
	delete(p.ns, ns)
	p.mu.Unlock()
}

// Ensure makes the topics exist with spec: missing ones are created with spec's partitions
// and retention; existing ones get more partitions when they have fewer (never fewer: Kafka
// cannot remove partitions, and records keyed to them would move) and their retention.ms
// set when it differs. On failure it returns how long to wait before trying again
// (exponential, per namespace).
func (p *Provisioner) Ensure(ctx context.Context, ns string, topics []string, spec TopicSpec) (retry time.Duration, err error) {
	s := p.state(ns)
	s.mu.Lock()
	defer s.mu.Unlock()
	var todo []string
	for _, t := range topics {
		if got, ok := s.done[t]; !ok || got != spec {
			todo = append(todo, t)
		}
	}
	if len(todo) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	ok, err := p.ensure(ctx, todo, spec)
	for _, t := range ok {
		s.done[t] = spec
	}
	if err != nil {
		s.failures++
		return backoff(s.failures), err
	}
	s.failures = 0
	return 0, nil
}

// backoff is 1s, 2s, 4s, ... up to 5 minutes.
func backoff(failures int) time.Duration {
	d := time.Second << min(failures-1, 9)
	return min(d, 5*time.Minute)
}

// ensure returns the topics brought to spec and every failure, each naming its topic.
func (p *Provisioner) ensure(ctx context.Context, topics []string, spec TopicSpec) (ok []string, err error) {
	// A fresh look: kadm's ListTopics otherwise answers from franz-go's metadata cache (up to
	// MetadataMinAge, 5 s, old), which can still say that a topic created meanwhile is missing
	// or show its partitions before they were added.
	ctx = kadm.WithAuthorizedOps(ctx)
	details, err := p.adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var errs []error
	var create, existing []string
	parts := map[string]int{}
	for _, t := range topics {
		d, found := details[t]
		switch {
		case !found || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			create = append(create, t)
		case d.Err != nil:
			errs = append(errs, fmt.Errorf("topic %s: %w", t, d.Err))
		default:
			existing = append(existing, t)
			parts[t] = len(d.Partitions)
		}
	}
	if len(create) > 0 {
		var configs map[string]*string
		if spec.Retention > 0 {
			ms := strconv.FormatInt(spec.Retention.Milliseconds(), 10)
			configs = map[string]*string{"retention.ms": &ms}
		}
		n := int32(-1) // the broker's default
		if spec.Partitions > 0 {
			n = spec.Partitions
		}
		resp, err := p.adm.CreateTopics(ctx, n, -1, configs, create...)
		if err != nil {
			errs = append(errs, fmt.Errorf("create topics %v: %w", create, err))
		}
		var raced []string
		for _, r := range resp.Sorted() {
			switch {
			case r.Err == nil:
				ok = append(ok, r.Topic)
			case errors.Is(r.Err, kerr.TopicAlreadyExists):
				raced = append(raced, r.Topic) // created meanwhile (by a collector): adjust it below
			default:
				errs = append(errs, fmt.Errorf("create topic %s: %w%s", r.Topic, r.Err, detail(r.ErrMessage)))
			}
		}
		if len(raced) > 0 {
			d, err := p.adm.ListTopics(ctx, raced...)
			if err != nil {
				errs = append(errs, fmt.Errorf("list topics: %w", err))
			}
			for _, t := range raced {
				if td, found := d[t]; found && td.Err == nil {
					existing = append(existing, t)
					parts[t] = len(td.Partitions)
				}
			}
		}
	}
	good, err := p.adjust(ctx, existing, parts, spec)
	ok = append(ok, good...)
	if err != nil {
		errs = append(errs, err)
	}
	return ok, errors.Join(errs...)
}

// adjust raises partitions and sets retention.ms of existing topics where they differ.
func (p *Provisioner) adjust(ctx context.Context, topics []string, parts map[string]int, spec TopicSpec) (ok []string, err error) {
	if len(topics) == 0 {
		return nil, nil
	}
	var errs []error
	failed := map[string]bool{}
	if spec.Partitions > 0 {
		var grow []string
		for _, t := range topics {
			if parts[t] < int(spec.Partitions) {
				grow = append(grow, t)
			}
		}
		if len(grow) > 0 {
			resp, err := p.adm.UpdatePartitions(ctx, int(spec.Partitions), grow...)
			if err != nil {
				errs = append(errs, fmt.Errorf("add partitions to %v: %w", grow, err))
				for _, t := range grow {
					failed[t] = true
				}
			}
			for _, r := range resp.Sorted() {
				if r.Err != nil {
					failed[r.Topic] = true
					errs = append(errs, fmt.Errorf("add partitions to topic %s (has %d, policy wants %d): %w%s", r.Topic, parts[r.Topic], spec.Partitions, r.Err, detail(r.ErrMessage)))
				}
			}
		}
	}
	if spec.Retention > 0 {
		want := strconv.FormatInt(spec.Retention.Milliseconds(), 10)
		rcs, err := p.adm.DescribeTopicConfigs(ctx, topics...)
		if err != nil {
			errs = append(errs, fmt.Errorf("describe topic configs: %w", err))
			for _, t := range topics {
				failed[t] = true
			}
		}
		var alter []string
		for _, rc := range rcs {
			if rc.Err != nil {
				failed[rc.Name] = true
				errs = append(errs, fmt.Errorf("describe topic %s: %w", rc.Name, rc.Err))
				continue
			}
			cur := ""
			for _, c := range rc.Configs {
				if c.Key == "retention.ms" {
					cur = c.MaybeValue()
				}
			}
			if cur != want {
				alter = append(alter, rc.Name)
			}
		}
		sort.Strings(alter)
		if len(alter) > 0 {
			resp, err := p.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &want}}, alter...)
			if err != nil {
				errs = append(errs, fmt.Errorf("set retention.ms of %v: %w", alter, err))
				for _, t := range alter {
					failed[t] = true
				}
			}
			for _, r := range resp {
				if r.Err != nil {
					failed[r.Name] = true
					errs = append(errs, fmt.Errorf("set retention.ms=%s of topic %s: %w%s", want, r.Name, r.Err, detail(r.ErrMessage)))
				}
			}
		}
	}
	for _, t := range topics {
		if !failed[t] {
			ok = append(ok, t)
		}
	}
	return ok, errors.Join(errs...)
}

func detail(msg string) string {
	if msg == "" {
		return ""
	}
	return " (" + msg + ")"
}

// EnsureCompacted makes the counters topic exist with cleanup.policy=compact, also when
// someone created it before with Kafka's defaults (delete).
func (p *Provisioner) EnsureCompacted(ctx context.Context, t string) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	compact := "compact"
	resp, err := p.adm.CreateTopics(ctx, -1, -1, map[string]*string{"cleanup.policy": &compact}, t)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", t, err)
	}
	r, err := resp.On(t, nil)
	if err == nil && r.Err == nil {
		return nil
	}
	if err == nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w%s", t, r.Err, detail(r.ErrMessage))
	}
	rcs, err := p.adm.DescribeTopicConfigs(ctx, t)
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", t, err)
	}
	rc, err := rcs.On(t, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", t, err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.MaybeValue() == "compact" {
			return nil
		}
	}
	ar, err := p.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: &compact}}, t)
	if err == nil {
		_, err = ar.On(t, nil)
		for _, r := range ar {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		return fmt.Errorf("set cleanup.policy=compact on topic %s: %w", t, err)
	}
	return nil
}
