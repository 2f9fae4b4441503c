package main

import (
	"mime"
	"net/http"
	"path/filepath"
)

// contentType guesses a file's type from its extension, then from its first bytes.
func contentType(name string, data []byte) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	return http.DetectContentType(data)
}
