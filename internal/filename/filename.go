// Package filename turns file names chosen by a server into names that are safe to create in a
// directory: a base name only, without control characters, leading dots or reserved device names.
package filename

import (
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLen bounds a sanitised name in bytes; most file systems allow 255.
const maxLen = 200

// reserved are the device names Windows refuses as file names, with or without an extension.
var reserved = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true,
	"COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true, "COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true, "LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true,
}

// Sanitize returns a safe base name for name, or "" when nothing usable is left.
func Sanitize(name string) string {
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "_")
	}
	// Only the last path element counts, whichever separator the server used.
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r):
			return -1
		case strings.ContainsRune(`<>:"|?*`, r):
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	name = strings.TrimRight(name, ". ")
	if name == "" {
		return ""
	}
	stem, _, _ := strings.Cut(name, ".")
	if reserved[strings.ToUpper(strings.TrimSpace(stem))] {
		return ""
	}
	if len(name) > maxLen {
		name = truncate(name)
	}
	return name
}

// truncate shortens name to maxLen bytes, keeping a short extension, on a rune boundary.
func truncate(name string) string {
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 16 {
		ext = name[i:]
		name = name[:i]
	}
	limit := maxLen - len(ext)
	for limit > 0 && !utf8.RuneStart(name[limit]) {
		limit--
	}
	return name[:limit] + ext
}

// FromContentDisposition returns the sanitised file name in a Content-Disposition header value, or "".
func FromContentDisposition(value string) string {
	if value == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(value)
	if err != nil {
		return ""
	}
	return Sanitize(params["filename"])
}
