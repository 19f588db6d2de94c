package replayguard_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
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

// markdownFiles are the documents whose links are checked: the README,
// BENCHMARKS.md, docs/ and every README under examples/.
func markdownFiles(t *testing.T) []string {
	files := []string{"README.md", "BENCHMARKS.md"}
	docs, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	files = append(files, docs...)
	require.NoError(t, filepath.WalkDir("examples", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "README.md" {
			files = append(files, path)
		}
		return err
	}))
	return files
}

// TestExamplesHaveReadmes: every directory of examples/ that holds an
// example has a README.md giving the command that runs it (an indented or
// fenced command line).
func TestExamplesHaveReadmes(t *testing.T) {
	command := regexp.MustCompile("(?m)^(    |\t|```)")
	checked := map[string]bool{}
	require.NoError(t, filepath.WalkDir("examples", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "README.md" {
			return err
		}
		dir := filepath.Dir(path)
		if dir == "examples" || checked[dir] {
			return nil
		}
		checked[dir] = true
		b, err := os.ReadFile(filepath.Join(dir, "README.md"))
		if assert.NoError(t, err, "%s has no README.md", dir) {
			assert.Regexp(t, command, string(b), "%s/README.md gives no command", dir)
		}
		return nil
	}))
}

// headingAnchors returns the GitHub anchors of the headings of a Markdown
// document, outside fenced code blocks; a repeated heading gets -1, -2, ….
func headingAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := anchor(h)
		if n := seen[a]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

// TestDocsRelativeLinksResolve: every relative link of the README, of
// BENCHMARKS.md, of docs/ and of the examples' READMEs names a file (or
// directory) of the repository, and a #fragment on a Markdown file names
// one of its headings.
func TestDocsRelativeLinksResolve(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)#\s]*)(#[^)\s]*)?\)`)
	for _, f := range markdownFiles(t) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target, frag := m[1], strings.TrimPrefix(m[2], "#")
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := f
			if target != "" {
				path = filepath.Join(filepath.Dir(f), target)
				if _, err := os.Stat(path); err != nil {
					assert.NoError(t, err, "%s links to %s", f, target)
					continue
				}
			}
			if frag == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			doc, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.True(t, headingAnchors(string(doc))[frag], "%s links to %s#%s, which has no such heading", f, target, frag)
		}
	}
}

// TestDocsPythonClient runs the Python client printed in
// docs/wire-format.md against a Guard, with a secret written as keygen
// prints it (base64:…) and with a plain one: the documented wire format
// is the implemented one.
func TestDocsPythonClient(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required (apt-get install -y python3)")
		}
		t.Skip("python3 not installed (apt-get install -y python3)")
	}
	doc, err := os.ReadFile("docs/wire-format.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(doc), "### A client in Python")
	require.True(t, ok)
	_, after, ok = strings.Cut(after, "```python\n")
	require.True(t, ok)
	script, _, ok := strings.Cut(after, "```")
	require.True(t, ok)

	raw := make([]byte, 32)
	_, err = rand.Read(raw)
	require.NoError(t, err)
	for _, tt := range []struct{ name, secret string }{
		{"keygen secret", "base64:" + base64.StdEncoding.EncodeToString(raw)},
		{"plain secret", "docs-secret-0123456789"},
	} {
		secret := tt.secret
		t.Run(tt.name, func(t *testing.T) {
			g, err := replayguard.New(replayguard.Config{
				Keys: []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{secret}}},
			})
			require.NoError(t, err)
			var hits atomic.Int64
			srv := httptest.NewServer(g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				body, _ := io.ReadAll(r.Body)
				v, _ := replayguard.VerifiedFrom(r.Context())
				fmt.Fprintf(w, "%s %s %s %s", v.KeyID, r.Method, r.URL.RequestURI(), body)
			})))
			defer srv.Close()

			script := regexp.MustCompile(`SECRET = "[^"]*"`).ReplaceAllLiteralString(script, `SECRET = "`+secret+`"`)
			script = strings.Replace(script, `"127.0.0.1:8080"`, `"`+strings.TrimPrefix(srv.URL, "http://")+`"`, 1)
			out, err := exec.Command("python3", "-c", script).CombinedOutput()
			require.NoError(t, err, string(out))
			assert.Equal(t, "200 client-a POST /v1/charges {\"amount\":100}\n", string(out))
			assert.Equal(t, int64(1), hits.Load())
		})
	}
}

// TestDocsConfigurationAtAGlance parses the whole-file example of
// docs/configuration.md and checks that the values it shows are the
// defaults: a file with only its required fields reads the same.
func TestDocsConfigurationAtAGlance(t *testing.T) {
	doc, err := os.ReadFile("docs/configuration.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(doc), "## The whole file at a glance")
	require.True(t, ok)
	_, after, ok = strings.Cut(after, "```yaml\n")
	require.True(t, ok)
	example, _, ok := strings.Cut(after, "```")
	require.True(t, ok)

	env := func(name string) (string, bool) {
		if name == "CLIENT_A_SECRET" {
			return "docs-secret-0123456789", true
		}
		return "", false
	}
	full, err := config.Parse([]byte(example), env)
	require.NoError(t, err)
	minimal, err := config.Parse([]byte("upstream: http://127.0.0.1:9000\nkeys: [{id: client-a, secrets: [\"${CLIENT_A_SECRET}\"]}]\n"), env)
	require.NoError(t, err)
	// The scheme sections stay empty in the file model; their scheme
	// fills them when it is built. Empty and absent lists read the same.
	minimal.HMAC, minimal.JWT, minimal.RFC9421 = full.HMAC, full.JWT, full.RFC9421
	for _, l := range []*[]string{&full.Idempotency.FingerprintHeaders, &full.Redis.Addrs} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	assert.Equal(t, minimal, full, "docs/configuration.md shows a value that is not the default")
}

// TestReadmeMinimalConfiguration parses the minimal gateway of README.md.
func TestReadmeMinimalConfiguration(t *testing.T) {
	doc, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(doc), "A minimal gateway:")
	require.True(t, ok)
	_, after, ok = strings.Cut(after, "```yaml\n")
	require.True(t, ok)
	example, _, ok := strings.Cut(after, "```")
	require.True(t, ok)
	_, err = config.Parse([]byte(example), func(string) (string, bool) { return "readme-secret-0123456789", true })
	require.NoError(t, err)
}
