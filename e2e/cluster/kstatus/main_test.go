// The CLI around kstatus, and kstatus's reading of Investigations shaped as casefile writes them
// (withKstatusConditions in src/api/conditions.ts). Run: cd e2e/cluster/kstatus && go test .
package main

import (
	"bytes"
	"strings"
	"testing"
)

const sealed = `{"apiVersion":"casefile.dev/v1alpha1","kind":"Investigation",
 "metadata":{"name":"sealed","namespace":"prod","generation":1},
 "status":{"observedGeneration":1,"phase":"Contained","conditions":[
  {"type":"EvidenceSealed","status":"True","reason":"Sealed","message":"14 artifacts"},
  {"type":"Ready","status":"True","reason":"CaseSealed","message":"every phase is done"}]}}`

const failed = `{"apiVersion":"casefile.dev/v1alpha1","kind":"Investigation",
 "metadata":{"name":"ghost","namespace":"prod","generation":1},
 "status":{"observedGeneration":1,"phase":"Failed","conditions":[
  {"type":"Ready","status":"False","reason":"TargetNotFound","message":"pod ghost\nnot found"},
  {"type":"Stalled","status":"True","reason":"TargetNotFound","message":"pod ghost\nnot found"}]}}`

const running = `{"apiVersion":"casefile.dev/v1alpha1","kind":"Investigation",
 "metadata":{"name":"running","namespace":"prod","generation":1},
 "status":{"phase":"Capturing","conditions":[
  {"type":"Reconciling","status":"True","reason":"InProgress","message":"working through the phases"}]}}`

const releaseUnobserved = `{"apiVersion":"casefile.dev/v1alpha1","kind":"Investigation",
 "metadata":{"name":"sealed","namespace":"prod","generation":2},
 "status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"True","reason":"CaseSealed","message":"done"}]}}`

func runOn(t *testing.T, input string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(nil, strings.NewReader(input), &out)
	return out.String(), err
}

func TestInvestigations(t *testing.T) {
	list := `{"apiVersion":"v1","kind":"List","items":[` + sealed + `,` + failed + `]}`
	got, err := runOn(t, list+"\n"+running+releaseUnobserved)
	if err != nil {
		t.Fatal(err)
	}
	want := "prod/sealed Current Resource is Ready\n" +
		"prod/ghost Failed pod ghost not found\n" +
		"prod/running InProgress working through the phases\n" +
		"prod/sealed InProgress Investigation generation is 2, but latest observed generation is 1\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestClusterScopedAndEmptyList(t *testing.T) {
	got, err := runOn(t, `{"apiVersion":"v1","kind":"List","items":[]}{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"prod"}}`)
	if err != nil || got != "prod Current Resource is current\n" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestBadInput(t *testing.T) {
	for _, input := range []string{"", "  \n", `{"kind":`, `{"metadata":{"name":"x"}}`, `[1,2]`, sealed + `}`} {
		if out, err := runOn(t, input); err == nil {
			t.Errorf("input %q: no error (output %q)", input, out)
		}
	}
	if err := run([]string{"/nonexistent/objects.json"}, nil, &bytes.Buffer{}); err == nil {
		t.Error("a missing file is not an error")
	}
	if err := run([]string{"a", "b"}, nil, &bytes.Buffer{}); err == nil {
		t.Error("two arguments are not an error")
	}
}
