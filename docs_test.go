package replayguard_test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
)

// configPaths returns every field of the configuration file (the Guard's
// model and the binary's sections) as its dotted YAML path
// ("idempotency.ttl", "keys[].id").
func configPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			out = append(out, configPaths(f.Type, prefix)...)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		out = append(out, path)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(replayguard.Duration(0)):
			out = append(out[:len(out)-1], configPaths(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, configPaths(ft.Elem(), path+"[].")...)
		}
	}
	return out
}

// anchor is GitHub's heading anchor.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestConfigurationReferenceCoversTheModel(t *testing.T) {
	doc, err := os.ReadFile("docs/configuration.md")
	require.NoError(t, err)
	headings := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			headings[strings.TrimSpace(h)] = true
		}
	}
	paths := configPaths(reflect.TypeOf(config.File{}), "")
	sort.Strings(paths)
	for _, p := range paths {
		assert.True(t, headings[p], "docs/configuration.md has no heading for %s", p)
	}
	known := map[string]bool{}
	for _, p := range paths {
		known[p] = true
	}
	for h := range headings {
		assert.True(t, known[h], "docs/configuration.md documents %s, which is not a configuration field", h)
	}
}

// TestPolicyKnobsExistAndLink checks the policy document against the code:
// every configuration knob it names is a field of the model and links to
// its entry in the configuration reference.
func TestPolicyKnobsExistAndLink(t *testing.T) {
	doc, err := os.ReadFile("docs/idempotency-and-replay-protection-policy.md")
	require.NoError(t, err)
	known := map[string]bool{}
	for _, p := range configPaths(reflect.TypeOf(config.File{}), "") {
		known[p] = true
	}
	link := regexp.MustCompile("\\[`([a-z0-9_.\\[\\]]+)`\\]\\(configuration\\.md#([a-z0-9_-]+)\\)")
	linked := map[string]bool{}
	for _, m := range link.FindAllStringSubmatch(string(doc), -1) {
		assert.True(t, known[m[1]], "policy names %s, which is not a configuration field", m[1])
		assert.Equal(t, anchor(m[1]), m[2], "link of %s", m[1])
		linked[m[1]] = true
	}
	require.NotEmpty(t, linked, "the policy links its knobs")
	// A knob written as code but not linked is a dangling reference.
	code := regexp.MustCompile("`([a-z_]+\\.[a-z0-9_]+)`")
	for _, m := range code.FindAllStringSubmatchIndex(string(doc), -1) {
		name := string(doc)[m[2]:m[3]]
		if !known[name] {
			continue
		}
		before := string(doc)[:m[0]]
		assert.True(t, strings.HasSuffix(before, "["), "policy mentions `%s` without linking it to the configuration reference", name)
	}
}

// TestRelativeLinksResolve: every relative link of the README and of docs/
// names a file (or directory) of the repository.
func TestRelativeLinksResolve(t *testing.T) {
	files := []string{"README.md", "BENCHMARKS.md"}
	docs, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	examples, err := filepath.Glob("examples/*/README.md")
	require.NoError(t, err)
	files = append(append(files, docs...), examples...)
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			_, err := os.Stat(filepath.Join(filepath.Dir(f), target))
			assert.NoError(t, err, "%s links to %s", f, target)
		}
	}
}
