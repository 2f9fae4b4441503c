package main

import (
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/mxfetch/mxfetch/testserver"
)

// serveReport prints the catalogue and serves the report, judged afresh on each request: HTML at
// /, text at /report.txt and JSON at /report.json. It returns a function that stops the listener.
func serveReport(srv *testserver.Server, published []testserver.Published, addr string, stdout io.Writer) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		srv.Judge(published).WriteHTML(w)
	})
	mux.HandleFunc("GET /report.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		srv.Judge(published).WriteText(w)
	})
	mux.HandleFunc("GET /report.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		srv.Judge(published).WriteJSON(w)
	})
	hs := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(l)
	}()
	base := "http://" + l.Addr().String() + "/"
	fmt.Fprintf(stdout, "report       %s (text: %sreport.txt, JSON: %sreport.json)\n", base, base, base)
	for _, p := range published {
		fmt.Fprintf(stdout, "scenario     %s %s\n", p.URI, p.Scenario.Name)
	}
	return func() {
		hs.Close()
		<-done
	}, nil
}
