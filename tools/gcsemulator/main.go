// Command gcs-emulator is fake-gcs-server (its fakestorage library, pinned in go.mod)
// with the parts of the XML API that obstore uses and the emulator does not serve:
//
//   - PUT /BUCKET/OBJECT, an upload (fake-gcs-server answers 400 "invalid uploadType");
//   - PUT /BUCKET/OBJECT with x-goog-copy-source, a copy;
//   - x-goog-if-generation-match on both (0: only if absent; N: only over generation N),
//     answered 412 when it does not hold;
//   - If-Match on GET and HEAD of /BUCKET/OBJECT (the emulator ignores it), answered 412
//     when the object's ETag differs;
//   - an XML API listing (GET /BUCKET) of a bucket that does not exist: 404 NoSuchBucket,
//     as GCS answers (the emulator answers 500);
//   - XML API multipart uploads (multipart.go), which obstore uses for large objects.
//
// A stand-in extension of the emulator for OpenFiles' tests, not a GCS implementation:
// every other request goes to fake-gcs-server unchanged. Conditional writes are checked
// and applied under one lock, so they are atomic among themselves (as on GCS); the
// emulator's own JSON API uploads do not take that lock. The answers carry what obstore
// reads: ETag (quoted, as fake-gcs-server's own GET gives it) and x-goog-generation.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// version is set at build time (scripts/bootstrap-tests.sh).
var version = "dev"

// jsonPrefixes are the emulator's own paths; anything else at the public host is XML API.
var jsonPrefixes = []string{"/storage/", "/upload/", "/download/", "/batch/", "/_internal/"}

type emulator struct {
	server  *fakestorage.Server
	inner   http.Handler
	writes  sync.Mutex
	uploads uploads
}

// object splits an XML API path "/BUCKET/OBJECT" (both percent-encoded: obstore sends
// "-" as %2D and "/" inside OBJECT as %2F); ok is false for the emulator's own paths and
// for a bare bucket.
func object(r *http.Request) (bucket, name string, ok bool) {
	path := r.URL.EscapedPath()
	if ownPath(path) {
		return "", "", false
	}
	return split(strings.TrimPrefix(path, "/"))
}

// ownPath is true for the emulator's JSON API and internal paths.
func ownPath(path string) bool {
	for _, prefix := range jsonPrefixes {
		if strings.HasPrefix(path, prefix) {
			return true
		}
	}
	return false
}

// split parses "BUCKET/OBJECT", each part percent-encoded.
func split(escaped string) (bucket, name string, ok bool) {
	escapedBucket, escapedName, found := strings.Cut(escaped, "/")
	if !found || escapedBucket == "" || escapedName == "" {
		return "", "", false
	}
	bucket, err := url.PathUnescape(escapedBucket)
	if err != nil {
		return "", "", false
	}
	name, err = url.PathUnescape(escapedName)
	return bucket, name, err == nil
}

func quoted(etag string) string { return strconv.Quote(etag) }

func (e *emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, name, ok := object(r)
	query := r.URL.Query()
	if ok && e.multipart(w, r, bucket, name) {
		return
	}
	switch {
	case ok && r.Method == http.MethodPut && query.Get("uploadType") == "" &&
		query.Get("X-Goog-Algorithm") == "" && query.Get("uploadId") == "":
		e.put(w, r, bucket, name)
	case ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		r.Header.Get("If-Match") != "":
		if !e.matches(w, bucket, name, r.Header.Get("If-Match")) {
			return
		}
		e.inner.ServeHTTP(w, r)
	case r.Method == http.MethodGet && isBucketPath(r):
		name, err := url.PathUnescape(strings.Trim(r.URL.EscapedPath(), "/"))
		if _, missing := e.server.Backend().GetBucket(name); err == nil && missing != nil {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchBucket</Code>"+
				"<Message>The specified bucket does not exist.</Message></Error>")
			return
		}
		e.inner.ServeHTTP(w, r)
	default:
		e.inner.ServeHTTP(w, r)
	}
}

// isBucketPath is true for "/BUCKET" and "/BUCKET/" outside the emulator's own paths.
func isBucketPath(r *http.Request) bool {
	path := r.URL.EscapedPath()
	if ownPath(path) {
		return false
	}
	trimmed := strings.Trim(path, "/")
	return trimmed != "" && !strings.Contains(trimmed, "/")
}

// matches answers 404 or 412 and returns false unless the object's ETag is one of `want`.
func (e *emulator) matches(w http.ResponseWriter, bucket, name, want string) bool {
	current, err := e.server.GetObject(bucket, name)
	if err != nil {
		http.Error(w, "object not found", http.StatusNotFound)
		return false
	}
	for _, tag := range strings.Split(want, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || tag == quoted(current.Etag) {
			return true
		}
	}
	http.Error(w, "If-Match does not hold", http.StatusPreconditionFailed)
	return false
}

// refusal is an HTTP error answer: its status and a short text.
type refusal struct {
	status int
	text   string
}

// put stores the body (or the copy source) at bucket/name, if the generation condition holds.
func (e *emulator) put(w http.ResponseWriter, r *http.Request, bucket, name string) {
	e.writes.Lock()
	stored, refused := e.write(r, bucket, name)
	e.writes.Unlock()
	if refused != nil {
		http.Error(w, refused.text, refused.status)
		return
	}
	w.Header().Set("ETag", quoted(stored.Etag))
	w.Header().Set("X-Goog-Generation", strconv.FormatInt(stored.Generation, 10))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// write does put's work under the write lock; it returns the stored object or why not.
func (e *emulator) write(r *http.Request, bucket, name string) (fakestorage.Object, *refusal) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return fakestorage.Object{}, &refusal{http.StatusBadRequest, "cannot read the body"}
	}
	contentType := r.Header.Get("Content-Type")
	if _, err := e.server.Backend().GetBucket(bucket); err != nil {
		return fakestorage.Object{}, &refusal{http.StatusNotFound, "bucket not found"}
	}
	if source := r.Header.Get("X-Goog-Copy-Source"); source != "" {
		srcBucket, srcName, ok := split(strings.TrimPrefix(source, "/"))
		src, err := e.server.GetObject(srcBucket, srcName)
		if !ok || err != nil {
			return fakestorage.Object{}, &refusal{http.StatusNotFound, "copy source not found"}
		}
		body, contentType = src.Content, src.ContentType
	}
	if want := r.Header.Get("X-Goog-If-Generation-Match"); want != "" {
		var current int64
		if existing, err := e.server.GetObject(bucket, name); err == nil {
			current = existing.Generation
		}
		if generation, err := strconv.ParseInt(want, 10, 64); err != nil || current != generation {
			return fakestorage.Object{}, &refusal{http.StatusPreconditionFailed,
				"x-goog-if-generation-match does not hold"}
		}
	}
	return e.store(bucket, name, contentType, body)
}

// store writes body at bucket/name (the caller holds the write lock) and reads it back.
func (e *emulator) store(bucket, name, contentType string, body []byte) (fakestorage.Object, *refusal) {
	created := fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: name, ContentType: contentType},
		Content:     body,
	}
	if err := e.server.CreateObjectStreaming(created.StreamingObject()); err != nil {
		return fakestorage.Object{}, &refusal{http.StatusInternalServerError, "cannot store the object"}
	}
	stored, err := e.server.GetObject(bucket, name)
	if err != nil {
		return fakestorage.Object{}, &refusal{http.StatusInternalServerError, "object gone after the write"}
	}
	return stored, nil
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Uint("port", 4443, "port to listen on")
	root := flag.String("filesystem-root", "", "directory of the objects (empty: in memory)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	address := fmt.Sprintf("%s:%d", *host, *port)
	server, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: *host, Port: uint16(*port), NoListener: true,
		StorageRoot: *root, PublicHost: address, ExternalURL: "http://" + address,
	})
	if err != nil {
		log.Fatalf("gcs-emulator: %v", err)
	}
	handler := &emulator{server: server, inner: server.HTTPHandler(),
		uploads: uploads{pending: map[string]*upload{}}}
	log.Printf("gcs-emulator %s listening on %s", version, address)
	log.Fatal(http.ListenAndServe(address, handler))
}
