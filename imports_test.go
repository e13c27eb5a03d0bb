package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/p2pxfer/p2pxfer"

// layers says which of the project's packages each may import. The
// packages form floors, each above all it imports, so the graph stays a
// DAG; the transport (peer/lane) imports none of them: it never learns of
// files, pieces, passwords or the signalling protocol. A new package, or
// a new import between packages, is a decision: make it here.
var layers = map[string][]string{
	".":                       {"cmd"},
	"cmd":                     {"browser", "chunker", "discovery", "pake", "peer", "peer/lane", "relay", "room", "signalclient", "sigserver"},
	"browser":                 {"room"},
	"peer":                    {"chunker", "pake", "peer/lane", "room", "sched"},
	"signalclient":            {"room"},
	"sigserver":               {"room"},
	"peer/lane":               {"internal/pionlog", "peer/lane/bulk"},
	"peer/lane/bulk":          {},
	"internal/pionlog":        {},
	"internal/netlab":         {},
	"internal/chromium":       {},
	"relay":                   {"internal/pionlog"},
	"discovery":               {"internal/pionlog"},
	"bench/relay":             {"bench/internal/benchkit", "internal/netlab"},
	"chunker":                 {},
	"pake":                    {},
	"room":                    {},
	"sched":                   {},
	"bench/internal/benchkit": {},
	"bench/internal/latency":  {"bench/internal/benchkit", "internal/netlab"},
	"bench/latency":           {"bench/internal/benchkit", "bench/internal/latency"},
	"bench/loopback":          {"bench/internal/benchkit", "bench/internal/latency"},
	"bench/paths":             {"bench/internal/benchkit", "bench/internal/latency", "internal/netlab"},
	"bench/swarm":             {"bench/internal/benchkit"},
	"bench/trees":             {"bench/internal/benchkit"},
	"bench/browser":           {"bench/internal/benchkit", "internal/chromium"},
}

// goList runs go list -deps over pkgs and returns, for each of the
// project's packages among them, the project's packages it imports.
func goList(t *testing.T, pkgs ...string) map[string][]string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`}, pkgs...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	ours := func(p string) (string, bool) {
		if p == module {
			return ".", true
		}
		rel, ok := strings.CutPrefix(p, module+"/")
		return rel, ok
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := ours(fields[0])
		if !ok {
			continue
		}
		graph[pkg] = []string{}
		for _, imp := range fields[1:] {
			if rel, ok := ours(imp); ok {
				graph[pkg] = append(graph[pkg], rel)
			}
		}
	}
	return graph
}

// TestImports: every package imports only what layers allows it, the
// graph is a DAG, and the transport depends, directly or not, on none of
// the project's packages but shared internal ones.
func TestImports(t *testing.T) {
	graph := goList(t, "./...")
	for pkg, imports := range graph {
		allowed, ok := layers[pkg]
		if !ok {
			t.Errorf("package %s is not in layers: say there what it may import", pkg)
			continue
		}
		for _, imp := range imports {
			if !slices.Contains(allowed, imp) {
				t.Errorf("%s imports %s, which layers does not allow", pkg, imp)
			}
		}
	}
	// Floors: a package stands above all it imports; a cycle has none.
	floor := map[string]int{}
	var place func(pkg string, path []string) int
	place = func(pkg string, path []string) int {
		if slices.Contains(path, pkg) {
			t.Fatalf("import cycle: %s -> %s", strings.Join(path, " -> "), pkg)
		}
		if f, ok := floor[pkg]; ok {
			return f
		}
		f := 1
		for _, imp := range graph[pkg] {
			f = max(f, place(imp, append(path, pkg))+1)
		}
		floor[pkg] = f
		return f
	}
	for pkg := range graph {
		place(pkg, nil)
	}
	for dep := range goList(t, "./peer/lane") {
		// Its own parts (peer/lane/bulk) are the transport too.
		if dep != "peer/lane" && !strings.HasPrefix(dep, "peer/lane/") && !strings.HasPrefix(dep, "internal/") {
			t.Errorf("peer/lane depends on %s; the transport must stand apart from the swarm and the signalling", dep)
		}
	}
}
