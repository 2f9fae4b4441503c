package testserver

// Rendering a conformance report: text for a terminal, JSON for CI, HTML for a browser.

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
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

// WriteText writes the report for a terminal: the clients seen, one line per scenario, then the
// reason and, for anything but a pass, the evidence.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	if len(r.Clients) > 0 {
		fmt.Fprintf(&b, "clients: %s\n", strings.Join(r.Clients, ", "))
	}
	for _, res := range r.Results {
		fmt.Fprintf(&b, "%-9s  %-28s %s\n", strings.ToUpper(string(res.Verdict)), res.Name, res.URI)
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

// ReportHandler serves the report on the published scenarios, judged afresh on each request: HTML
// at /, text at /report.txt and JSON (with the file information of encrypted items) at
// /report.json.
func (s *Server) ReportHandler(published []Published) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		s.Judge(published).WriteHTML(w)
	})
	mux.HandleFunc("GET /report.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		s.Judge(published).WriteText(w)
	})
	mux.HandleFunc("GET /report.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		s.Judge(published).WriteJSON(w)
	})
	return mux
}

// fileJSON renders an encrypted item's file information as the event carries it.
func fileJSON(f any) string {
	b, err := json.Marshal(f)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"class": func(v Verdict) string { return strings.ReplaceAll(string(v), " ", "-") },
	"json":  fileJSON,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mxfetch test server: conformance report</title>
<style>
body { font: 14px/1.35 system-ui, sans-serif; margin: 1em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
p { margin: .3em 0 .6em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .3em .5em; border-bottom: 1px solid #ddd; }
td:first-child { border-left: 4px solid #bbb; }
tr[data-verdict="pass"] td:first-child { border-left-color: #17692a; }
tr[data-verdict="fail"] td:first-child { border-left-color: #b00020; }
tr[data-verdict="observed"] td:first-child { border-left-color: #d9a000; }
.verdict { font-weight: bold; white-space: nowrap; text-transform: uppercase; font-size: 12px; }
.pass { color: #17692a; } .fail { color: #b00020; } .observed { color: #8a5a00; } .not-tried { color: #666; }
#summary { font-weight: bold; }
code, pre { font: 12px/1.3 ui-monospace, monospace; }
pre { white-space: pre-wrap; word-break: break-all; margin: .2em 0 0; background: #f6f6f6; padding: .3em; }
.expect, .purpose { color: #555; }
summary { cursor: pointer; color: #555; }
</style>
</head>
<body>
<h1>Conformance report</h1>
<p class="counts" id="summary"><span class="pass">{{.Count "pass"}} pass</span>, <span class="fail">{{.Count "fail"}} fail</span>, <span class="observed">{{.Count "observed"}} observed</span>, <span class="not-tried">{{.Count "not tried"}} not tried</span></p>
<p>Judged at {{.Time.Format "2006-01-02 15:04:05"}} from the server's request log alone (credentials and signatures redacted){{if .Clients}}; clients seen: {{range $i, $c := .Clients}}{{if $i}}, {{end}}<code>{{$c}}</code>{{end}}{{end}}.
<b>observed</b>: the log cannot tell a safe client from an unsafe one here; the reason says what to check on the client.</p>
<table>
<thead><tr><th>Verdict</th><th>Scenario</th><th>What the client did</th></tr></thead>
<tbody>
{{range .Results}}<tr class="result" data-name="{{.Name}}" data-verdict="{{.Verdict}}">
<td class="verdict {{class .Verdict}}">{{.Verdict}}</td>
<td><b>{{.Name}}</b> <code>{{.URI}}</code><br><span class="purpose">{{.Purpose}}</span><br><span class="expect">Expected: {{.Expect}}</span>{{if .File}}<details><summary>file information of the event</summary><pre>{{json .File}}</pre></details>{{end}}</td>
<td class="why">{{.Why}}{{if .Evidence}}<details{{if ne .Verdict "pass"}} open{{end}}><summary>{{len .Evidence}} request(s)</summary><pre>{{range .Evidence}}{{.}}
{{end}}</pre></details>{{end}}</td>
</tr>
{{end}}</tbody>
</table>
</body>
</html>
`))
