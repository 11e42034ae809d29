//go:build !collector

package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mattn/go-shellwords"
)

var updatePipelinesDoc = flag.Bool("update-pipelines-doc", false, "rewrite the outputs of docs/pipelines.md's console blocks with what the commands print (review the diff)")

const pipelinesDoc = "../../docs/pipelines.md"

// docBlock is one fenced block of docs/pipelines.md.
type docBlock struct {
	lang  string
	file  string // from a "<!-- file: NAME -->" line just before the fence
	start int    // line index of the first content line
	lines []string
}

var fileMarker = regexp.MustCompile(`^<!-- file: (\S+) -->$`)

func readDocBlocks(t *testing.T, lines []string) []docBlock {
	t.Helper()
	var blocks []docBlock
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") {
			continue
		}
		b := docBlock{lang: strings.TrimPrefix(lines[i], "```"), start: i + 1}
		if i > 0 {
			if m := fileMarker.FindStringSubmatch(lines[i-1]); m != nil {
				b.file = m[1]
			}
		}
		j := i + 1
		for ; j < len(lines) && lines[j] != "```"; j++ {
			b.lines = append(b.lines, lines[j])
		}
		if j == len(lines) {
			t.Fatalf("docs/pipelines.md:%d: unterminated block", i+1)
		}
		blocks = append(blocks, b)
		i = j
	}
	return blocks
}

// Every example of docs/pipelines.md runs: each yaml and sample block is a file (named by the
// "<!-- file: -->" line before it), each console block's "$ logrouter ..." commands run
// against those files and must print exactly what the block shows after them ("; echo exit
// $?" adds the exit code as a shell would), and every pipeline file that no command uses must
// pass `pipeline validate`.
func TestPipelinesDoc(t *testing.T) {
	docPath, err := filepath.Abs(pipelinesDoc)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	blocks := readDocBlocks(t, lines)
	dir := t.TempDir()
	files := map[string]bool{}
	for _, b := range blocks {
		switch b.lang {
		case "console", "outline":
			continue // commands run below; an outline of the schema is no file
		case "yaml", "text":
		default:
			t.Fatalf("docs/pipelines.md:%d: block of %q: only yaml, text (samples), console and outline blocks are known", b.start, b.lang)
		}
		if b.file == "" {
			t.Fatalf("docs/pipelines.md:%d: a %s block without a <!-- file: NAME --> line before it", b.start, b.lang)
		}
		if files[b.file] {
			t.Fatalf("docs/pipelines.md:%d: file %s defined twice", b.start, b.file)
		}
		files[b.file] = true
		p := filepath.Join(dir, b.file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Join(b.lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)

	used := map[string]bool{}
	commands := 0
	type replacement struct {
		from, to int // line range of an output in lines
		out      []string
	}
	var repl []replacement
	for _, b := range blocks {
		if b.lang != "console" {
			continue
		}
		for i := 0; i < len(b.lines); {
			cmdLine := b.lines[i]
			if !strings.HasPrefix(cmdLine, "$ ") {
				t.Fatalf("docs/pipelines.md:%d: console block line is not a $ command: %q", b.start+i+1, cmdLine)
			}
			j := i + 1
			for j < len(b.lines) && !strings.HasPrefix(b.lines[j], "$ ") {
				j++
			}
			want := b.lines[i+1 : j]
			got := runDocCommand(t, strings.TrimPrefix(cmdLine, "$ "), used)
			commands++
			if *updatePipelinesDoc {
				repl = append(repl, replacement{from: b.start + i + 1, to: b.start + j, out: got})
			} else if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("docs/pipelines.md:%d: %s\nprints:\n%s\nthe doc shows:\n%s", b.start+i+1, cmdLine, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			i = j
		}
	}
	if commands < 8 {
		t.Fatalf("only %d commands found in docs/pipelines.md", commands)
	}
	if *updatePipelinesDoc {
		for k := len(repl) - 1; k >= 0; k-- {
			r := repl[k]
			lines = append(lines[:r.from], append(append([]string{}, r.out...), lines[r.to:]...)...)
		}
		if err := os.WriteFile(docPath, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for f := range files {
		if used[f] || !strings.HasSuffix(f, ".yaml") {
			continue
		}
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"pipeline", "validate", "-f", f}, &out, &errOut); code != 0 {
			t.Errorf("docs/pipelines.md: %s does not validate:\n%s%s", f, out.String(), errOut.String())
		}
	}
}

// runDocCommand runs one documented command line and returns what it prints (stdout, then
// stderr, then "exit N" if the line ends in `; echo exit $?`).
func runDocCommand(t *testing.T, line string, used map[string]bool) []string {
	t.Helper()
	echoExit := false
	if s, ok := strings.CutSuffix(line, "; echo exit $?"); ok {
		line, echoExit = s, true
	}
	args, err := shellwords.Parse(line)
	if err != nil || len(args) == 0 || args[0] != "logrouter" {
		t.Fatalf("docs/pipelines.md: %q: only logrouter commands are run (%v)", line, err)
	}
	for i, a := range args {
		if i > 0 && (args[i-1] == "-f" || args[i-1] == "--policy") {
			used[strings.TrimSuffix(a, "/")] = true
			if st, err := os.Stat(a); err == nil && st.IsDir() {
				ents, _ := os.ReadDir(a)
				for _, e := range ents {
					used[filepath.Join(a, e.Name())] = true
				}
			}
		}
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), args[1:], &out, &errOut)
	var got []string
	for _, s := range []string{out.String(), errOut.String()} {
		sc := bufio.NewScanner(strings.NewReader(s))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			got = append(got, sc.Text())
		}
	}
	if echoExit {
		got = append(got, fmt.Sprintf("exit %d", code))
	} else if code != 0 {
		t.Errorf("docs/pipelines.md: %q exited %d (end the line in \"; echo exit $?\" to show a failure):\n%s", line, code, strings.Join(got, "\n"))
	}
	return got
}
