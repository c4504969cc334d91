// helmlite renders a Helm chart offline the way `helm template` does, for tests/deploy: Go's
// text/template with Sprig's functions plus Helm's own (include, tpl, required, toYaml,
// fromYaml, lookup as an empty map), values.yaml deep-merged with the -f files, and
// .Release/.Chart/.Capabilities. Each rendered template is printed as a YAML document headed by
// `# Source: CHART/templates/FILE`; a template that renders to nothing is left out, as Helm does.
// NOTES.txt and files starting with `_` are not printed. Not Helm: no subcharts, hooks,
// schema validation or `.Files`.
//
//	helmlite [-name RELEASE] [-namespace NS] [-f values.yaml ...] CHART_DIR
//
// Built with Debian's golang-go and golang-github-masterminds-sprig-dev in GOPATH mode
// (GO111MODULE=off GOPATH=/usr/share/gocode), so it needs no module download.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"gopkg.in/yaml.v3"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// merge copies src over dst; maps merge key by key, anything else is replaced (Helm's rule).
func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func toYAML(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func main() {
	name := flag.String("name", "dog", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	var files valueFiles
	flag.Var(&files, "f", "values file (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helmlite [-name R] [-namespace NS] [-f values.yaml ...] CHART_DIR")
		os.Exit(2)
	}
	if err := render(flag.Arg(0), *name, *namespace, files); err != nil {
		fmt.Fprintln(os.Stderr, "helmlite:", err)
		os.Exit(1)
	}
}

func render(dir, name, namespace string, files []string) error {
	chart, err := readYAML(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		extra, err := readYAML(f)
		if err != nil {
			return err
		}
		merge(values, extra)
	}
	chartName, _ := chart["name"].(string)
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{"Name": name, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart": map[string]interface{}{"Name": chart["name"], "Version": chart["version"],
			"AppVersion": chart["appVersion"], "Description": chart["description"]},
		"Capabilities": map[string]interface{}{"KubeVersion": map[string]interface{}{"Version": "v1.29.0"}},
	}

	root := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	funcs["include"] = func(n string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, n, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		_ = yaml.Unmarshal([]byte(s), &m)
		return m
	}
	funcs["lookup"] = func(...interface{}) map[string]interface{} { return map[string]interface{}{} }
	root.Funcs(funcs)

	paths, err := filepath.Glob(filepath.Join(dir, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(paths)
	var names []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n := chartName + "/templates/" + filepath.Base(p)
		if _, err := root.New(n).Parse(string(data)); err != nil {
			return err
		}
		names = append(names, n)
	}
	for _, n := range names {
		base := filepath.Base(n)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, n, top); err != nil {
			return err
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(stripComments(out)) == "" {
			continue
		}
		fmt.Printf("---\n# Source: %s\n%s\n", n, strings.TrimRight(out, "\n"))
	}
	// NOTES.txt must render too (helm install prints it).
	if root.Lookup(chartName+"/templates/NOTES.txt") != nil {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, chartName+"/templates/NOTES.txt", top); err != nil {
			return err
		}
	}
	return nil
}

func stripComments(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
