package mediaclient_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// countingTransport counts the exchanges that go through it.
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(req)
}

func mautrixClient(t *testing.T, srv *testserver.Server) (*mautrix.Client, *countingTransport) {
	t.Helper()
	cli, err := mautrix.NewClient(srv.URL, "@bot:"+id.UserID(srv.ServerName), srv.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{base: mediaclient.NewTransport()}
	t.Cleanup(ct.base.(*http.Transport).CloseIdleConnections)
	cli.Client = &http.Client{Transport: ct}
	cli.UserAgent = "my-bridge/1.0"
	return cli, ct
}

func TestMautrixWrapperMethods(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	cli, ct := mautrixClient(t, srv)
	w, err := mediaclient.Wrap(cli)
	if err != nil {
		t.Fatal(err)
	}
	want := content(50_000, 5)
	uri := srv.AddMedia(want, testserver.MediaOptions{ContentType: "image/jpeg", FileName: "cat.jpg", Thumbnail: []byte("thumb")})

	resp, err := w.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !sameBytes(got, want) {
		t.Errorf("Download: %d bytes, %v; want the %d bytes uploaded", len(got), err, len(want))
	}
	if resp.StatusCode != 200 {
		t.Errorf("Download: status %d; want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "image/jpeg" {
		t.Errorf("Download: Content-Type %q; want image/jpeg", ct)
	}
	if resp.ContentLength != 50_000 {
		t.Errorf("Download: ContentLength %d; want 50000", resp.ContentLength)
	}

	resp, err = w.DownloadWithParams(t.Context(), uri, mautrix.DownloadExtra{Query: map[string]string{"x.custom": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := srv.RequestsTo(testserver.OriginHomeserver)
	if q := reqs[len(reqs)-1].Query(); q.Get("x.custom") != "1" || q.Get("allow_redirect") != "true" {
		t.Errorf("DownloadWithParams query: %v", q)
	}

	resp, err = w.DownloadThumbnail(t.Context(), uri, 32, 64, mautrix.DownloadThumbnailExtra{Method: "scale"})
	if err != nil {
		t.Fatal(err)
	}
	thumb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(thumb) != "thumb" {
		t.Errorf("DownloadThumbnail: body %q; want %q", thumb, "thumb")
	}
	reqs = srv.RequestsTo(testserver.OriginHomeserver)
	q := reqs[len(reqs)-1].Query()
	for param, want := range map[string]string{"height": "32", "width": "64", "method": "scale"} {
		if got := q.Get(param); got != want {
			t.Errorf("DownloadThumbnail: %s=%q; want %q", param, got, want)
		}
	}

	data, err := w.DownloadBytes(t.Context(), uri)
	if err != nil || !sameBytes(data, want) {
		t.Errorf("DownloadBytes: %d bytes, %v", len(data), err)
	}

	// Every hop went through the mautrix client's transport, with its user agent; the CDN never saw
	// the token.
	if n := ct.n.Load(); n != int64(len(srv.Requests())) {
		t.Errorf("custom transport saw %d exchanges; the servers saw %d", n, len(srv.Requests()))
	}
	for _, r := range srv.Requests() {
		if r.Header.Get("User-Agent") != "my-bridge/1.0" {
			t.Errorf("User-Agent %q", r.Header.Get("User-Agent"))
		}
	}
	if credentialsAt(srv, testserver.OriginCDN) != 0 {
		t.Error("token at the CDN")
	}
}

func TestMautrixWrapperErrors(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	cli, _ := mautrixClient(t, srv)
	w, _ := mediaclient.Wrap(cli)
	missing := id.ContentURI{Homeserver: srv.ServerName, FileID: "missing"}
	for name, call := range map[string]func() error{
		"Download":          func() error { _, err := w.Download(t.Context(), missing); return err },
		"DownloadBytes":     func() error { _, err := w.DownloadBytes(t.Context(), missing); return err },
		"DownloadThumbnail": func() error { _, err := w.DownloadThumbnail(t.Context(), missing, 10, 10); return err },
	} {
		err := call()
		if !errors.Is(err, mautrix.MNotFound) {
			t.Errorf("%s: err = %v; want to match mautrix.MNotFound", name, err)
		}
		if httpStatus(err) != 404 {
			t.Errorf("%s: err = %v; want a mautrix.HTTPError with status 404", name, err)
		}
	}
	// mautrix gives the same answer for comparison.
	if _, err := cli.Download(t.Context(), missing); !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("mautrix itself: %v", err)
	}
	if _, err := mediaclient.Wrap(nil); !errors.Is(err, mediaclient.ErrInvalidArgument) {
		t.Errorf("Wrap(nil): %v", err)
	}
}

// TestMautrixLeaksWrapperDoesNot shows why the wrapper exists: against a CDN on another port of the
// same host, mautrix's own Client.Download sends the access token to the CDN; the wrapper does not.
func TestMautrixLeaksWrapperDoesNot(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V1Redirect: testserver.Always}})
	uri := srv.AddMedia([]byte("secret picture"), testserver.MediaOptions{})
	cli, _ := mautrixClient(t, srv)

	data, err := cli.DownloadBytes(t.Context(), uri)
	if err != nil || string(data) != "secret picture" {
		t.Fatal(data, err)
	}
	if credentialsAt(srv, testserver.OriginCDN) != 1 {
		t.Fatalf("expected mautrix's own download to hand the token to the CDN; log: %+v", srv.RequestsTo(testserver.OriginCDN))
	}

	srv.ResetLog()
	w, _ := mediaclient.Wrap(cli)
	if data, err := w.DownloadBytes(t.Context(), uri); err != nil || string(data) != "secret picture" {
		t.Fatal(data, err)
	}
	if n := credentialsAt(srv, testserver.OriginCDN); n != 0 || len(srv.RequestsTo(testserver.OriginCDN)) != 1 {
		t.Errorf("wrapper: %d CDN requests with credentials", n)
	}

	// And where the CDN is an S3-style bucket, mautrix's download breaks on the forwarded token.
	srv.SetBehavior(testserver.Behavior{V1Redirect: testserver.Always, CDNRejectsAuth: true})
	var he mautrix.HTTPError
	if _, err := cli.DownloadBytes(t.Context(), uri); !errors.As(err, &he) || he.Response.StatusCode != 400 {
		t.Errorf("mautrix against a bucket: %v; want its 400", err)
	}
	if _, err := w.DownloadBytes(t.Context(), uri); err != nil {
		t.Errorf("wrapper against a bucket: %v", err)
	}
}

// encryptAndUpload encrypts plaintext as a Matrix client does and uploads the ciphertext through
// the server's upload endpoint with mautrix.
func encryptAndUpload(t *testing.T, cli *mautrix.Client, plaintext []byte) *event.EncryptedFileInfo {
	t.Helper()
	ef := attachment.NewEncryptedFile()
	ciphertext := bytes.Clone(plaintext)
	ef.EncryptInPlace(ciphertext)
	up, err := cli.UploadBytes(t.Context(), ciphertext, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	return &event.EncryptedFileInfo{EncryptedFile: *ef, URL: up.ContentURI.CUString()}
}

func TestEncryptedRoundTrip(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	cli, _ := mautrixClient(t, srv)
	w, _ := mediaclient.Wrap(cli)
	plaintext := content(200_000, 77)
	file := encryptAndUpload(t, cli, plaintext)

	got, err := w.DownloadEncryptedBytes(t.Context(), file)
	if err != nil || !sameBytes(got, plaintext) {
		t.Fatalf("decrypted %d bytes, %v", len(got), err)
	}
	if len(srv.RequestsTo(testserver.OriginCDN)) != 1 || credentialsAt(srv, testserver.OriginCDN) != 0 {
		t.Error("the encrypted download did not go through the CDN without the token")
	}
	m, err := w.DownloadEncrypted(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := io.ReadAll(m)
	m.Close()
	if err != nil || !sameBytes(streamed, plaintext) {
		t.Fatalf("streamed %d bytes, %v", len(streamed), err)
	}

	// Tampered ciphertext: the same key and IV, one byte flipped, so the hash no longer matches.
	tampered := *file
	ciphertext := bytes.Clone(plaintext)
	ef := attachment.EncryptedFile{Key: file.Key, InitVector: file.InitVector, Version: file.Version}
	ef.EncryptInPlace(ciphertext)
	ciphertext[1234] ^= 0xff
	tampered.URL = srv.AddMedia(ciphertext, testserver.MediaOptions{}).CUString()
	if got, err := w.DownloadEncryptedBytes(t.Context(), &tampered); got != nil || !errors.Is(err, attachment.ErrHashMismatch) {
		t.Errorf("tampered: %d bytes, %v; want no plaintext and ErrHashMismatch", len(got), err)
	}
	m, err = w.DownloadEncrypted(t.Context(), &tampered)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(m)
	m.Close()
	var me *mediaclient.Error
	if !errors.Is(err, attachment.ErrHashMismatch) || !errors.As(err, &me) {
		t.Errorf("tampered stream: %v; want *Error wrapping ErrHashMismatch at the end", err)
	}

	// A wrong hash in the event.
	wrong := *file
	other := sha256.Sum256([]byte("other"))
	wrong.Hashes.SHA256 = base64.RawStdEncoding.EncodeToString(other[:])
	if got, err := w.DownloadEncryptedBytes(t.Context(), &wrong); got != nil || !errors.Is(err, attachment.ErrHashMismatch) {
		t.Errorf("wrong hash: %d bytes, %v", len(got), err)
	}
	// A broken key is refused before any request.
	srv.ResetLog()
	broken := *file
	broken.Key.Key = "short"
	if _, err := w.DownloadEncryptedBytes(t.Context(), &broken); !errors.Is(err, mediaclient.ErrInvalidArgument) || len(srv.Requests()) != 0 {
		t.Errorf("broken key: %v after %d requests", err, len(srv.Requests()))
	}
}

func TestMautrixWrapperAgainstMediaProxy(t *testing.T) {
	cdn := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	want := content(70_000, 8)
	uri := cdn.AddMedia(want, testserver.MediaOptions{})
	proxyURL, _ := startMediaProxy(t, cdn, testserver.OriginCDN)
	cli, err := mautrix.NewClient(proxyURL, "", "proxy-token")
	if err != nil {
		t.Fatal(err)
	}
	w, err := mediaclient.Wrap(cli, mediaclient.Options{API: mediaclient.APIV1})
	if err != nil {
		t.Fatal(err)
	}
	uri.Homeserver = "proxy.test"
	data, err := w.DownloadBytes(t.Context(), uri)
	if err != nil || !sameBytes(data, want) {
		t.Fatalf("%d bytes, %v", len(data), err)
	}
	if credentialsAt(cdn, testserver.OriginCDN) != 0 {
		t.Error("token at the CDN")
	}
}

// Example_botHandler shows a bot's m.image handler that downloads plain and encrypted images
// through the wrapper: the one-line change from cli.DownloadBytes.
func Example_botHandler() {
	srv, _ := testserver.Start(testserver.Config{Profile: testserver.ProfileMediaRepo})
	defer srv.Close()
	cli, _ := mautrix.NewClient(srv.URL, "@bot:example.org", srv.AccessToken)
	media, _ := mediaclient.Wrap(cli) // the one line: media.DownloadBytes where cli.DownloadBytes was

	handle := func(ctx context.Context, evt *event.Event) {
		content := evt.Content.AsMessage()
		if content.MsgType != event.MsgImage {
			return
		}
		var data []byte
		var err error
		if content.File != nil {
			data, err = media.DownloadEncryptedBytes(ctx, content.File)
		} else {
			uri, _ := content.URL.Parse()
			data, err = media.DownloadBytes(ctx, uri)
		}
		if err != nil {
			fmt.Println("download failed:", err)
			return
		}
		fmt.Printf("%s: %s\n", content.Body, data)
	}

	plainURI := srv.AddMedia([]byte("plain pixels"), testserver.MediaOptions{ContentType: "image/png"})
	ef := attachment.NewEncryptedFile()
	ciphertext := []byte("secret pixels")
	ef.EncryptInPlace(ciphertext)
	encURI := srv.AddMedia(ciphertext, testserver.MediaOptions{})

	for _, c := range []*event.MessageEventContent{
		{MsgType: event.MsgImage, Body: "plain.png", URL: plainURI.CUString()},
		{MsgType: event.MsgImage, Body: "secret.png", File: &event.EncryptedFileInfo{EncryptedFile: *ef, URL: encURI.CUString()}},
	} {
		evt := &event.Event{Type: event.EventMessage, Content: event.Content{Parsed: c}}
		handle(context.Background(), evt)
	}
	// Output:
	// plain.png: plain pixels
	// secret.png: secret pixels
}
