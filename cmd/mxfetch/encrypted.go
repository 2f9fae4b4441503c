package main

import (
	"encoding/json"
	"io"
	"os"

	"maunium.net/go/mautrix/event"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// loadEncryptedFile reads --encrypted-file: the "file" object of an encrypted event. Its URL is the
// URI to download when none was given; a different URI on the command line is a usage error.
func (o *options) loadEncryptedFile() error {
	data, err := os.ReadFile(o.encryptedFile)
	if err != nil {
		return usagef("reading --encrypted-file: %v", err)
	}
	var f event.EncryptedFileInfo
	if err := json.Unmarshal(data, &f); err != nil {
		return usagef("--encrypted-file %s is not a JSON file object: %v", o.encryptedFile, err)
	}
	if err := f.PrepareForDecryption(); err != nil {
		return usagef("--encrypted-file %s: %v", o.encryptedFile, err)
	}
	switch {
	case len(o.uris) == 0 && o.input == "":
		o.uris = []string{string(f.URL)}
	case len(o.uris) != 1 || o.uris[0] != string(f.URL):
		return usagef("--encrypted-file goes with its own URI (%s) only", f.URL)
	}
	o.encrypted = &f
	return nil
}

// source is what gets written for a download: the body, decrypted when --encrypted-file was given.
// A hash mismatch is an error at the end of the stream, so the atomic write never renames.
func (d *downloader) source(m *mediaclient.Media) (io.Reader, error) {
	if d.o.encrypted == nil {
		return m, nil
	}
	f := *d.o.encrypted // each download decrypts with its own stream state
	return mediaclient.Decrypt(m, &f.EncryptedFile)
}
