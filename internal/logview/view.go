package logview

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Format is an output format.
type Format string

// Formats.
const (
	Text Format = "text"
	JSON Format = "json"
	Raw  Format = "raw"
)

// ParseFormat parses -o.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Text, JSON, Raw:
		return f, nil
	}
	return "", fmt.Errorf("output %q: want text, json or raw", s)
}

// Line is one record to show.
type Line struct {
	Time           time.Time
	Pod, Container string
	Stream         string // "stdout" or "stderr"
	Message        string
	// Exact holds the message's exact bytes when they are not valid UTF-8 (message_base64).
	Exact []byte
	// Record is the record's JSON, for -o json.
	Record []byte
}

// Options configures a Printer.
type Options struct {
	Format Format
	// Color turns on ANSI colours (text only): the caller decides (a terminal, NO_COLOR unset).
	Color bool
	// Terminal says the output is a terminal: raw messages are then neutralised too (to a
	// pipe they are written exactly, byte for byte).
	Terminal bool
}

// pod colours: stern's palette (bright, readable on dark and light backgrounds); a pod keeps
// its colour, assigned in the order pods appear.
var palette = []string{"\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m",
	"\x1b[91m", "\x1b[92m", "\x1b[93m", "\x1b[94m", "\x1b[95m", "\x1b[96m"}

const (
	reset = "\x1b[0m"
	faint = "\x1b[2m"
)

// maxColumn bounds the padding of the pod and container columns, so one long name does not
// push every message off the screen.
const maxColumn = 48

// Printer writes lines in one format. It is not safe for concurrent use.
type Printer struct {
	w              *bufio.Writer
	opt            Options
	colors         map[string]string
	podW, ctrW     int
	buf, msgPrefix []byte
}

// New returns a printer writing to w; call Flush when done (or after a batch).
func New(w io.Writer, opt Options) *Printer {
	if opt.Format == "" {
		opt.Format = Text
	}
	return &Printer{w: bufio.NewWriterSize(w, 64<<10), opt: opt, colors: map[string]string{}}
}

// Flush writes what is buffered.
func (p *Printer) Flush() error { return p.w.Flush() }

// Print writes one line.
func (p *Printer) Print(l *Line) error {
	b := p.buf[:0]
	switch p.opt.Format {
	case JSON:
		b = append(SafeJSON(b, l.Record), '\n')
	case Raw:
		switch {
		case p.opt.Terminal:
			b = p.multiline(b, nil, l.Message)
		case l.Exact != nil:
			b = append(append(b, l.Exact...), '\n')
		default:
			b = append(append(b, l.Message...), '\n')
		}
	default:
		b = p.text(b, l)
	}
	p.buf = b
	_, err := p.w.Write(b)
	return err
}

// text writes "TIME POD CONTAINER MESSAGE" with the pod and container columns as wide as the
// widest seen so far (up to maxColumn); the lines of a multi-line message after the first are
// indented to the message column.
func (p *Printer) text(b []byte, l *Line) []byte {
	pod, ctr := Neutralise(nil, l.Pod), Neutralise(nil, l.Container)
	p.podW = min(max(p.podW, utf8.RuneCount(pod)), maxColumn)
	p.ctrW = min(max(p.ctrW, utf8.RuneCount(ctr)), maxColumn)
	if p.opt.Color {
		b = append(b, faint...)
	}
	b = l.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	if p.opt.Color {
		b = append(b, reset...)
	}
	b = append(b, ' ')
	if p.opt.Color {
		b = append(b, p.color(l.Pod)...)
	}
	b = pad(append(b, pod...), p.podW-utf8.RuneCount(pod))
	b = append(b, ' ')
	if p.opt.Color {
		b = append(b, reset+faint...)
	}
	b = pad(append(b, ctr...), p.ctrW-utf8.RuneCount(ctr))
	if p.opt.Color {
		b = append(b, reset...)
	}
	b = append(b, ' ')
	if l.Stream == "stderr" {
		b = append(b, "! "...)
	} else {
		b = append(b, "  "...)
	}
	// The continuation indent: the visible width of what precedes the message.
	width := 24 + 1 + p.podW + 1 + p.ctrW + 1 + 2
	p.msgPrefix = pad(p.msgPrefix[:0], width)
	return p.multiline(b, p.msgPrefix, l.Message)
}

// multiline writes msg's lines, each neutralised, the second and later ones after indent.
func (p *Printer) multiline(b, indent []byte, msg string) []byte {
	for i := 0; ; i++ {
		line, rest, more := strings.Cut(msg, "\n")
		if i > 0 {
			b = append(b, indent...)
		}
		b = append(Neutralise(b, strings.TrimSuffix(line, "\r")), '\n')
		if !more {
			return b
		}
		msg = rest
	}
}

func (p *Printer) color(pod string) string {
	c, ok := p.colors[pod]
	if !ok {
		c = palette[len(p.colors)%len(palette)]
		p.colors[pod] = c
	}
	return c
}

func pad(b []byte, n int) []byte {
	for range n {
		b = append(b, ' ')
	}
	return b
}
