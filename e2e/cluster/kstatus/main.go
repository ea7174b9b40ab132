// kstatus prints what sigs.k8s.io/cli-utils' kstatus (the status library Flux, kpt and
// cli-utils' apply wait on) computes for Kubernetes objects: one line per object,
// "<namespace>/<name> <status> <message>" ("<name> ..." for a cluster-scoped object).
// Input is JSON on stdin, or in the file named by the only argument: one object, a List
// (kubectl get -o json), or several of either one after another.
// Exit status: 0 when every object was read and computed, 1 otherwise (the error on stderr).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	in := stdin
	switch len(args) {
	case 0:
	case 1:
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	default:
		return errors.New("usage: kstatus [FILE]  (JSON objects or Lists; stdin without FILE)")
	}
	objects, err := readObjects(in)
	if err != nil {
		return err
	}
	for _, u := range objects {
		res, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("%s: %w", id(u), err)
		}
		fmt.Fprintf(stdout, "%s %s %s\n", id(u), res.Status, oneLine(res.Message))
	}
	return nil
}

// readObjects decodes every JSON document in r, expanding Lists into their items.
func readObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := json.NewDecoder(r)
	var out []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			if doc == 1 {
				return nil, errors.New("no JSON object in the input")
			}
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		// UnstructuredJSONScheme decodes numbers as int64/float64 the way kstatus expects, and a
		// document with "items" as a List.
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(raw, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		switch o := obj.(type) {
		case *unstructured.Unstructured:
			out = append(out, o)
		case *unstructured.UnstructuredList:
			for i := range o.Items {
				out = append(out, &o.Items[i])
			}
		default:
			return nil, fmt.Errorf("document %d: unexpected %T", doc, runtime.Object(obj))
		}
	}
}

func id(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

// oneLine keeps one object per output line whatever its message holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
