package testserver

// Rendering a conformance report: text for a terminal, JSON for CI, HTML for a browser.

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
)

// Count returns how many results have the verdict.
func (r Report) Count(v Verdict) int {
	n := 0
	for _, res := range r.Results {
		if res.Verdict == v {
			n++
		}
	}
	return n
}

// Summary says in one line how many scenarios passed, failed, were observed and not tried.
func (r Report) Summary() string {
	return fmt.Sprintf("%d pass, %d fail, %d observed, %d not tried", r.Count(Pass), r.Count(Fail), r.Count(Observed), r.Count(NotTried))
}

// WriteText writes the report for a terminal: one line per scenario, then the reason and, for
// anything but a pass, the evidence.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, res := range r.Results {
		fmt.Fprintf(&b, "%-9s  %-26s %s\n", strings.ToUpper(string(res.Verdict)), res.Name, res.URI)
		fmt.Fprintf(&b, "           %s\n", res.Why)
		if res.Verdict != Pass {
			for _, e := range res.Evidence {
				fmt.Fprintf(&b, "             %s\n", e)
			}
		}
	}
	fmt.Fprintf(&b, "%s\n", r.Summary())
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteHTML writes the report as a self-contained HTML page.
func (r Report) WriteHTML(w io.Writer) error {
	return reportPage.Execute(w, r)
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"class": func(v Verdict) string { return strings.ReplaceAll(string(v), " ", "-") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mxfetch test server: conformance report</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .4em .6em; border-bottom: 1px solid #ddd; }
.verdict { font-weight: bold; white-space: nowrap; }
.pass { color: #17692a; } .fail { color: #b00020; } .observed { color: #8a5a00; } .not-tried { color: #666; }
code, pre { font: 12px/1.35 ui-monospace, monospace; }
pre { white-space: pre-wrap; margin: .3em 0 0; background: #f6f6f6; padding: .4em; }
.expect { color: #555; }
</style>
</head>
<body>
<h1>Conformance report</h1>
<p id="summary">{{.Summary}} — judged at {{.Time.Format "2006-01-02 15:04:05"}} from the server's request log (credentials redacted).</p>
<table>
<thead><tr><th>Verdict</th><th>Scenario</th><th>What happened</th></tr></thead>
<tbody>
{{range .Results}}<tr class="result" data-name="{{.Name}}" data-verdict="{{.Verdict}}">
<td class="verdict {{class .Verdict}}">{{.Verdict}}</td>
<td><b>{{.Name}}</b><br><code>{{.URI}}</code><br>{{.Purpose}}<br><span class="expect">Expected: {{.Expect}}</span></td>
<td>{{.Why}}{{if .Evidence}}<details{{if ne .Verdict "pass"}} open{{end}}><summary>{{len .Evidence}} request(s)</summary><pre>{{range .Evidence}}{{.}}
{{end}}</pre></details>{{end}}</td>
</tr>
{{end}}</tbody>
</table>
</body>
</html>
`))
