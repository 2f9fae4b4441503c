// Package filename turns file names chosen by a server into names that are safe to create in a
// directory: a base name only, without control, format or separator characters, leading dots or
// reserved device names, and short enough that a temporary name built from it still fits the
// 255-byte limit of common file systems. It also maps content types to file name extensions with a
// fixed table, so that a name does not depend on the machine's /etc/mime.types.
package filename

import (
	"crypto/sha256"
	"encoding/hex"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLen bounds a name returned by Sanitize and Fit, in bytes. Most file systems allow 255 bytes;
// the margin leaves room for the prefix and suffix of a temporary name.
const MaxLen = 200

// reserved are the device names Windows refuses as file names, with or without an extension, in
// upper case: COM and LPT take the digits 0 to 9 and the superscripts ¹, ² and ³.
var reserved = func() map[string]bool {
	m := map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true}
	for _, d := range "0123456789\u00b9\u00b2\u00b3" {
		m["COM"+string(d)], m["LPT"+string(d)] = true, true
	}
	return m
}()

// Reserved reports whether Windows refuses name as a file name: a device name (CON, COM1, LPT², CONIN$,
// …) in any case, alone or before an extension ("con.txt", "COM0.tar.gz"), with or without spaces
// before the first dot.
func Reserved(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	return reserved[strings.ToUpper(strings.TrimSpace(stem))]
}

// Invisible reports whether r is a character that changes how text around it is shown or is not
// shown at all: a control character (C0, DEL, C1), a format character (Unicode category Cf, such as
// U+202E RIGHT-TO-LEFT OVERRIDE or U+200B ZERO WIDTH SPACE), a line or paragraph separator (U+2028,
// U+2029), another default-ignorable code point (such as U+3164 HANGUL FILLER) or a noncharacter.
func Invisible(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r < 0xa0:
		return true
	case r < 0x80:
		return false
	case r == utf8.RuneError:
		return false // a replacement character is visible
	case r >= 0xfdd0 && r <= 0xfdef, r&0xfffe == 0xfffe:
		return true // noncharacters
	}
	return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point)
}

// Sanitize returns a safe base name for name, or "" when nothing usable is left. Invisible
// characters are dropped, spaces other than U+0020 become U+0020, characters that Windows forbids
// become "_", leading dots (a hidden file, "." or "..") are dropped but a name that was only an
// extension the table of Extension knows keeps it (".txt" becomes "_.txt", ".bashrc" "bashrc"), spaces around the extension's dot are dropped, a
// leading "-" (an option to the next "rm *") becomes "_", a Windows device name gives "", and a name
// longer than MaxLen bytes is shortened, keeping its extension.
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
		case Invisible(r):
			return -1
		case unicode.Is(unicode.Zs, r):
			return ' '
		case strings.ContainsRune(`<>:"|?*`, r):
			return '_'
		}
		return r
	}, name)
	// A slash-like character dropped above may have joined ".." again: split once more.
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	if rest := strings.TrimLeft(name, ". "); rest != name {
		if known[strings.ToLower("."+rest)] {
			rest = "_." + rest // ".txt" keeps its extension; ".bashrc" becomes "bashrc"
		}
		name = rest
	}
	name = strings.TrimRight(name, ". ")
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		stem, ext := strings.TrimRight(name[:i], " "), strings.TrimLeft(name[i+1:], " ")
		if stem != "" && ext != "" {
			name = stem + "." + ext // "photo\u00a0.\u00a0jpg": photo.jpg
		}
	}
	if name == "" || Reserved(name) {
		return ""
	}
	if name[0] == '-' {
		name = "_" + name[1:]
	}
	if len(name) > MaxLen {
		name = truncate(name)
	}
	return name
}

// FromID returns a safe name made of an identifier that a server chose (a media ID, perhaps with a
// suffix) and an extension (with its dot, or ""): Fit's name, with Sanitize's checks. It never
// returns "": a name Sanitize refuses (a device name such as CON) gets "_" before it.
func FromID(id, ext string) string {
	if name := Sanitize(Fit(id, ext)); name != "" {
		return name
	}
	if name := Sanitize(Fit("_"+id, ext)); name != "" {
		return name
	}
	return "_" + ext
}

// truncate shortens name to MaxLen bytes, keeping a short extension, on a rune boundary.
func truncate(name string) string {
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 16 {
		ext = name[i:]
		name = name[:i]
	}
	return cut(name, MaxLen-len(ext)) + ext
}

// cut returns the longest prefix of s that is at most n bytes and ends on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Fit joins stem and ext (which starts with a dot, or is "") into a name of at most MaxLen bytes.
// A stem that is too long is cut and ends in "-" and 16 hexadecimal digits of its SHA-256, so that
// two long stems with the same beginning still give two names.
func Fit(stem, ext string) string {
	if len(stem)+len(ext) <= MaxLen {
		return stem + ext
	}
	sum := sha256.Sum256([]byte(stem))
	tag := "-" + hex.EncodeToString(sum[:8])
	return cut(stem, MaxLen-len(ext)-len(tag)) + tag + ext
}

// Prefix returns the beginning of name, at most n bytes, cut on a rune boundary: a readable hint in
// the name of a temporary file.
func Prefix(name string, n int) string { return cut(name, n) }

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

// extensions maps the media types met in Matrix rooms to the extension people expect. It is fixed:
// mime.ExtensionsByType reads the machine's mime.types and returns the alphabetically first
// extension (.asc for text/plain, .jfif for image/jpeg), which differs between machines.
var extensions = map[string]string{
	"text/plain":      ".txt",
	"text/html":       ".html",
	"text/css":        ".css",
	"text/csv":        ".csv",
	"text/markdown":   ".md",
	"text/calendar":   ".ics",
	"text/vcard":      ".vcf",
	"text/x-vcard":    ".vcf",
	"text/xml":        ".xml",
	"text/javascript": ".js",

	"image/jpeg":               ".jpg",
	"image/pjpeg":              ".jpg",
	"image/png":                ".png",
	"image/apng":               ".apng",
	"image/gif":                ".gif",
	"image/webp":               ".webp",
	"image/avif":               ".avif",
	"image/heic":               ".heic",
	"image/heif":               ".heif",
	"image/jxl":                ".jxl",
	"image/svg+xml":            ".svg",
	"image/bmp":                ".bmp",
	"image/tiff":               ".tiff",
	"image/x-icon":             ".ico",
	"image/vnd.microsoft.icon": ".ico",

	"video/mp4":        ".mp4",
	"video/webm":       ".webm",
	"video/quicktime":  ".mov",
	"video/x-matroska": ".mkv",
	"video/ogg":        ".ogv",
	"video/mpeg":       ".mpeg",
	"video/3gpp":       ".3gp",
	"video/x-msvideo":  ".avi",

	"audio/ogg":    ".ogg",
	"audio/opus":   ".opus",
	"audio/mpeg":   ".mp3",
	"audio/mp3":    ".mp3",
	"audio/mp4":    ".m4a",
	"audio/x-m4a":  ".m4a",
	"audio/aac":    ".aac",
	"audio/flac":   ".flac",
	"audio/x-flac": ".flac",
	"audio/wav":    ".wav",
	"audio/x-wav":  ".wav",
	"audio/webm":   ".weba",
	"audio/amr":    ".amr",
	"audio/midi":   ".mid",

	"application/json":              ".json",
	"application/pdf":               ".pdf",
	"application/zip":               ".zip",
	"application/gzip":              ".gz",
	"application/x-gzip":            ".gz",
	"application/x-tar":             ".tar",
	"application/x-7z-compressed":   ".7z",
	"application/vnd.rar":           ".rar",
	"application/x-rar-compressed":  ".rar",
	"application/x-bzip2":           ".bz2",
	"application/x-xz":              ".xz",
	"application/zstd":              ".zst",
	"application/xml":               ".xml",
	"application/javascript":        ".js",
	"application/ogg":               ".ogg",
	"application/epub+zip":          ".epub",
	"application/wasm":              ".wasm",
	"application/msword":            ".doc",
	"application/vnd.ms-excel":      ".xls",
	"application/vnd.ms-powerpoint": ".ppt",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   ".docx",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         ".xlsx",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
	"application/vnd.oasis.opendocument.text":                                   ".odt",
	"application/vnd.oasis.opendocument.spreadsheet":                            ".ods",
	"application/vnd.oasis.opendocument.presentation":                           ".odp",
	"application/vnd.android.package-archive":                                   ".apk",

	"font/ttf":   ".ttf",
	"font/otf":   ".otf",
	"font/woff":  ".woff",
	"font/woff2": ".woff2",
}

// known holds the extensions of the table, as a name ends in them.
var known = func() map[string]bool {
	m := map[string]bool{}
	for _, ext := range extensions {
		m[ext] = true
	}
	return m
}()

// Extension returns the file name extension (with its dot) for a Content-Type value, or "" for a
// type that is unknown, malformed or application/octet-stream. Parameters such as charset are
// ignored and the comparison ignores case.
func Extension(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return extensions[mt]
}
