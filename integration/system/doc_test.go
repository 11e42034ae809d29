package system

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mattn/go-shellwords"
)

// TestReliabilityDocCommands checks every command of docs/reliability.md against this
// package: each is `go test ./integration/system` with a -run pattern that selects existing
// tests, and every LOGROUTER_SYSTEM_* variable it sets is one the tests read. (Running the
// commands is what the other tests of this package do.)
func TestReliabilityDocCommands(t *testing.T) {
	doc, err := os.ReadFile("../../docs/reliability.md")
	if err != nil {
		t.Fatal(err)
	}
	// The packages whose commands the page may show, and their tests and sources.
	type pkg struct {
		tests []string
		src   strings.Builder
	}
	pkgs := map[string]*pkg{"./integration/system": {}, "./integration/hostile": {}}
	dirs := map[string]string{"./integration/system": ".", "./integration/hostile": "../hostile"}
	fset := token.NewFileSet()
	for name, p := range pkgs {
		files, _ := filepath.Glob(filepath.Join(dirs[name], "*_test.go"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p.src.Write(b)
			af, err := parser.ParseFile(fset, f, b, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range af.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Test") {
					p.tests = append(p.tests, fd.Name.Name)
				}
			}
		}
	}
	tests := pkgs["./integration/system"].tests
	n := 0
	for i, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "    ") || !strings.Contains(line, "go test") {
			continue
		}
		n++
		args, err := shellwords.Parse(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("docs/reliability.md:%d: %v", i+1, err)
		}
		var env []string
		for len(args) > 0 && strings.Contains(args[0], "=") {
			env = append(env, strings.SplitN(args[0], "=", 2)[0])
			args = args[1:]
		}
		if len(args) < 3 || args[0] != "go" || args[1] != "test" || pkgs[args[2]] == nil {
			t.Errorf("docs/reliability.md:%d: not a go test of ./integration/system or ./integration/hostile: %q", i+1, line)
			continue
		}
		p := pkgs[args[2]]
		for _, name := range env {
			if !strings.Contains(p.src.String(), `"`+name+`"`) {
				t.Errorf("docs/reliability.md:%d: %s is read by no test", i+1, name)
			}
		}
		run := ""
		for j, a := range args {
			if a == "-run" && j+1 < len(args) {
				run = args[j+1]
			}
		}
		_, err = regexp.Compile(run)
		if run == "" || err != nil {
			t.Errorf("docs/reliability.md:%d: -run %q: %v", i+1, run, err)
			continue
		}
		for _, alt := range strings.Split(run, "|") {
			are := regexp.MustCompile(alt)
			found := false
			for _, name := range p.tests {
				found = found || are.MatchString(name)
			}
			if !found {
				t.Errorf("docs/reliability.md:%d: -run %q: %q selects no test", i+1, run, alt)
			}
		}
	}
	if n == 0 {
		t.Fatal("docs/reliability.md: no commands found")
	}
	// Every scenario test is in the table.
	for _, name := range tests {
		if name != "TestReliabilityDocCommands" && name != "TestMain" && !strings.Contains(string(doc), name) {
			t.Errorf("docs/reliability.md does not mention %s", name)
		}
	}
}
