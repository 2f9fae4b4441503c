package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/mxfetch/mxfetch/testserver"
)

// serveReport prints the catalogue and serves the report (testserver's ReportHandler: HTML at /,
// text at /report.txt, JSON at /report.json). An encrypted scenario's line is followed by a "file"
// line holding the event's file information as JSON. It returns a function that stops the listener.
func serveReport(srv *testserver.Server, published []testserver.Published, addr string, stdout io.Writer) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	hs := &http.Server{Handler: srv.ReportHandler(published)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(l)
	}()
	base := "http://" + l.Addr().String() + "/"
	fmt.Fprintf(stdout, "report       %s (text: %sreport.txt, JSON: %sreport.json)\n", base, base, base)
	for _, p := range published {
		fmt.Fprintf(stdout, "scenario     %s %s\n", p.URI, p.Scenario.Name)
		if p.File != nil {
			file, err := json.Marshal(p.File)
			if err != nil {
				hs.Close()
				return nil, fmt.Errorf("report: %w", err)
			}
			fmt.Fprintf(stdout, "file         %s %s\n", p.Scenario.Name, file)
		}
	}
	return func() {
		hs.Close()
		<-done
	}, nil
}
