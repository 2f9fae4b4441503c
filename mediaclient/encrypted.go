package mediaclient

import (
	"context"
	"fmt"
	"io"

	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
)

// DownloadEncrypted downloads an end-to-end-encrypted attachment (the "file" object of an event) and
// decrypts it as it streams, through mautrix's crypto/attachment. The SHA-256 of the ciphertext is
// checked when the stream ends: a mismatch is returned by the Read that reaches the end, in place of
// io.EOF, as an *Error wrapping attachment.ErrHashMismatch. Bytes read before that are unverified;
// a caller that must never use unverified plaintext reads to the end before using any (as
// DownloadBytes of the mautrix wrapper and the CLI do). The caller must Close the Media.
func (c *Client) DownloadEncrypted(ctx context.Context, file *event.EncryptedFileInfo) (*Media, error) {
	if file == nil {
		return nil, &Error{Op: "download", Err: fmt.Errorf("%w: nil encrypted file", ErrInvalidArgument)}
	}
	uri, err := file.URL.Parse()
	if err != nil || uri.IsEmpty() {
		return nil, &Error{Op: "download", URI: string(file.URL), Err: fmt.Errorf("%w %q", ErrInvalidURI, file.URL)}
	}
	keys := fresh(&file.EncryptedFile)
	if err := keys.PrepareForDecryption(); err != nil {
		return nil, &Error{Op: "download", URI: uri.String(), Err: fmt.Errorf("%w: encrypted file: %w", ErrInvalidArgument, err)}
	}
	m, err := c.Download(ctx, uri)
	if err != nil {
		return nil, err
	}
	m.r = newDecryptReader(m.r, keys)
	return m, nil
}

// fresh copies the exported fields of an encrypted file. mautrix caches decoded keys inside the
// struct (and an object that was just used to encrypt caches them without the hash), so decrypting
// with the caller's object would race with other users of it, or check against a zero hash.
func fresh(f *attachment.EncryptedFile) *attachment.EncryptedFile {
	return &attachment.EncryptedFile{Key: f.Key, InitVector: f.InitVector, Hashes: f.Hashes, Version: f.Version}
}

// Decrypt wraps a ciphertext stream so that it reads as plaintext. The SHA-256 of the ciphertext is
// checked at the end: the Read that reaches it returns attachment.ErrHashMismatch instead of io.EOF
// when it does not match. Closing the result closes r when r is an io.Closer.
func Decrypt(r io.Reader, file *attachment.EncryptedFile) (io.ReadCloser, error) {
	keys := fresh(file)
	if err := keys.PrepareForDecryption(); err != nil {
		return nil, fmt.Errorf("%w: encrypted file: %w", ErrInvalidArgument, err)
	}
	return newDecryptReader(r, keys), nil
}

// decryptReader turns the hash check that mautrix's stream does in Close into an error at the end of
// the stream, where a reader sees it.
type decryptReader struct {
	inner io.ReadSeekCloser
	err   error
}

func newDecryptReader(r io.Reader, file *attachment.EncryptedFile) *decryptReader {
	return &decryptReader{inner: file.DecryptStream(r)}
}

func (d *decryptReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.inner.Read(p)
	if err == io.EOF {
		if cerr := d.inner.Close(); cerr != nil {
			err = cerr
		}
		d.err = err
	}
	return n, err
}

func (d *decryptReader) Close() error {
	if d.err != nil {
		return nil // already closed at the end of the stream
	}
	d.err = io.ErrClosedPipe
	d.inner.Close()
	return nil
}
